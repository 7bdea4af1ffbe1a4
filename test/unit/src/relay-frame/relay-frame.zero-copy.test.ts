/**
 * Zero-copy data frames (`allocateDataPayload`) and the stream id cache: the bytes are exactly those
 * of an ordinary encoding, the header room is used once (a retransmission gets its own copy), and a
 * reliable stream's duplex hands such buffers out and sends them framed in place.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  allocateDataPayload,
  DATA_PAYLOAD_OFFSET,
  decodeRelayFrameOrThrow,
  encodeRelayFrame,
  peekHeader,
  streamIdFromBytes,
  streamIdToBytes,
} from '../../../../src/relay-frame/relay-frame.js';
import { ReliableStream } from '../../../../src/reliable-stream/reliable-stream.js';

describe('zero-copy data frames', () => {
  it('encodes a prepared payload in place, byte-identical to a copying encode, and copies on the second encode', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2048 }), fc.integer({ min: 0, max: 1000 }), fc.integer({ min: -1, max: 1000 }), (bytes, seq, ack) => {
        const streamId = randomUUID();
        const payload = allocateDataPayload(bytes.length);
        payload.set(bytes);
        const init = { streamId, ack, ackBits: 5, body: { type: 'data' as const, seq, segmentIndex: 0, segmentCount: 1, payload } };
        const first = encodeRelayFrame(init);
        const plain = encodeRelayFrame({ ...init, body: { ...init.body, payload: Uint8Array.from(bytes) } });
        expect(Buffer.from(first).equals(Buffer.from(plain))).toBe(true);
        // The first frame is the payload's own memory, header in front.
        expect(first.buffer).toBe(payload.buffer);
        expect(first.byteOffset + DATA_PAYLOAD_OFFSET).toBe(payload.byteOffset);
        // A second encoding (a retransmission with new ack state) is a separate copy: the first frame,
        // possibly still queued in a socket, is left as it was.
        const again = encodeRelayFrame({ ...init, ack: ack + 1 });
        expect(again.buffer).not.toBe(payload.buffer);
        expect(decodeRelayFrameOrThrow(first).ack).toBe(ack);
        expect(decodeRelayFrameOrThrow(again).ack).toBe(ack + 1);
        expect(Buffer.from((decodeRelayFrameOrThrow(again).body as { payload: Uint8Array }).payload).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('refuses an out-of-range prepared payload length', () => {
    expect(() => allocateDataPayload(64 * 1024 + 1)).toThrow();
    expect(() => allocateDataPayload(-1)).toThrow();
  });

  it('a reliable stream sends a chunk from its allocator framed in place, and a peer receives it', async () => {
    const streamId = randomUUID();
    const sender = new ReliableStream({ streamId, role: 'initiator' });
    const receiver = new ReliableStream({ streamId });
    const sent: Uint8Array[] = [];
    sender.attach((frame) => {
      sent.push(frame);
      const copy = Uint8Array.from(frame);
      setImmediate(() => receiver.receiveFrame(decodeRelayFrameOrThrow(copy)));
    });
    receiver.attach((frame) => {
      const copy = Uint8Array.from(frame);
      setImmediate(() => sender.receiveFrame(decodeRelayFrameOrThrow(copy)));
    });
    const duplex = sender.toDuplex();
    const chunk = duplex.allocateChunk!(1000);
    chunk.fill(7);
    const received = new Promise<Uint8Array>((resolve) => receiver.onMessage(resolve));
    // The sink ends with closeWrite, which the reset below rejects: not part of this test.
    const sinking = duplex.sink((async function* () {
      yield chunk;
    })()).catch(() => undefined);
    expect(Buffer.from(await received).equals(Buffer.alloc(1000, 7))).toBe(true);
    expect(sent.some((frame) => frame.buffer === chunk.buffer)).toBe(true);
    sender.reset('done');
    await sinking;
  });
});

describe('stream id strings', () => {
  it('gives the right id whatever the order of ids (the one-entry cache never answers for another id)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1, maxLength: 50 }), (picks) => {
        const ids = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
        for (const pick of picks) {
          const id = ids[pick]!;
          const frame = encodeRelayFrame({ streamId: id, ack: -1, ackBits: 0, body: { type: 'ack' } });
          const peeked = peekHeader(frame);
          expect(peeked.ok && peeked.header.streamId).toBe(id);
          expect(streamIdFromBytes(streamIdToBytes(id))).toBe(id);
        }
      }),
    );
  });
});
