/**
 * The Noise channel runs the transport phase itself (not through libp2p-noise's it-pipe pipeline):
 * these tests pin that the bytes on the wire are still exactly libp2p-noise 16's, by talking to a
 * stock `@chainsafe/libp2p-noise` connection, and that the receive side parses any chunking of the
 * Noise byte stream and any cutting of the plaintext into records (headers and abort frames split
 * across records, several messages in one record).
 */
import { noise } from '@chainsafe/libp2p-noise';
import type { ComponentLogger, Logger, Upgrader } from '@libp2p/interface';
import fc from 'fast-check';
import { Uint8ArrayList } from 'uint8arraylist';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, type Identity } from '../../../../src/noise/identity.js';
import { acceptAgentChannel, openClientChannel, type SecureChannel } from '../../../../src/noise/noise-channel.js';
import type { ByteDuplex } from '../../../../src/transport/byte-duplex.js';
import { createMemoryDuplexPair } from '../../../support/memory-duplex.js';

let agentIdentity: Identity;
let clientIdentity: Identity;

beforeAll(async () => {
  [agentIdentity, clientIdentity] = await Promise.all([generateIdentity(), generateIdentity()]);
});

const silentLogger: Logger = Object.assign(() => undefined, { error: () => undefined, trace: () => undefined, enabled: false, newScope: (): Logger => silentLogger });
const components = (identity: Identity) => ({
  peerId: identity.peerId,
  privateKey: identity.privateKey,
  logger: { forComponent: () => silentLogger } as ComponentLogger,
  upgrader: { getStreamMuxers: () => new Map() } as unknown as Upgrader,
});

interface PlainDuplex {
  source: AsyncIterable<Uint8Array | Uint8ArrayList>;
  sink: (source: AsyncIterable<Uint8Array>) => Promise<void>;
}

/** `end` as libp2p-noise sees a duplex; it writes Uint8ArrayLists, flattened here as a reliable stream does. */
function noiseView(end: ByteDuplex): unknown {
  return {
    source: end.source,
    sink: (source: AsyncIterable<Uint8Array | Uint8ArrayList>) =>
      end.sink(
        (async function* () {
          for await (const chunk of source) yield chunk instanceof Uint8Array ? chunk : chunk.subarray();
        })(),
      ),
  };
}

/** A stock libp2p-noise 16 initiator (its own transport pipeline) on `end`. */
async function stockClient(end: ByteDuplex): Promise<PlainDuplex> {
  const encrypter = noise()(components(clientIdentity));
  const stream = noiseView(end) as Parameters<typeof encrypter.secureOutbound>[0];
  const secured = await encrypter.secureOutbound(stream, { remotePeer: agentIdentity.peerId, skipStreamMuxerNegotiation: true, signal: AbortSignal.timeout(5000) });
  return secured.conn as unknown as PlainDuplex;
}

/** A stock libp2p-noise 16 responder on `end`. */
async function stockAgent(end: ByteDuplex): Promise<PlainDuplex> {
  const encrypter = noise()(components(agentIdentity));
  const stream = noiseView(end) as Parameters<typeof encrypter.secureInbound>[0];
  const secured = await encrypter.secureInbound(stream, { skipStreamMuxerNegotiation: true, signal: AbortSignal.timeout(5000) });
  return secured.conn as unknown as PlainDuplex;
}

function frame(text: string): Uint8Array {
  const body = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

function abortFrame(reason: string): Uint8Array {
  const body = Buffer.from(reason, 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeUInt32BE(0xffffffff, 0);
  out.writeUInt32BE(body.length, 4);
  body.copy(out, 8);
  return out;
}

/** Cuts `bytes` at the given fractions (sorted, deduplicated) into consecutive pieces. */
function cut(bytes: Uint8Array, fractions: number[]): Uint8Array[] {
  const points = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].filter((p) => p > 0 && p < bytes.length).sort((a, b) => a - b);
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, bytes.length]) {
    pieces.push(bytes.subarray(start, point));
    start = point;
  }
  return pieces;
}

/**
 * Re-chunks a byte stream: after the first `passThrough` chunks (the handshake messages, which a
 * reader waits for one by one), the pieces a reader gets are cut at `sizes` (cycled).
 */
function rechunked(source: AsyncIterable<Uint8Array>, sizes: number[], passThrough = 2): AsyncIterable<Uint8Array> {
  return (async function* () {
    const pending = new Uint8ArrayList();
    let i = 0;
    let seen = 0;
    for await (const chunk of source) {
      if (seen++ < passThrough) {
        yield chunk;
        continue;
      }
      pending.append(chunk);
      for (;;) {
        const size = sizes[i % sizes.length]!;
        if (pending.byteLength < size) break;
        yield pending.subarray(0, size);
        pending.consume(size);
        i++;
      }
    }
    if (pending.byteLength > 0) yield pending.subarray();
  })();
}

function collect(channel: SecureChannel): { messages: string[]; closed: Promise<Error | undefined> } {
  const messages: string[] = [];
  channel.onMessage((m) => messages.push(m));
  return { messages, closed: new Promise((resolve) => channel.onClose(resolve)) };
}

const texts = fc.array(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.constantFrom('', 'x'.repeat(70_000))), { minLength: 1, maxLength: 6 });

describe('noise channel wire compatibility with stock libp2p-noise 16', () => {
  it('receives messages from a stock libp2p-noise sender whatever the record cuts (headers split across records too)', async () => {
    await fc.assert(
      fc.asyncProperty(texts, fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }), async (messages, fractions) => {
        const [clientEnd, agentEnd] = createMemoryDuplexPair({ capacityChunks: 64 });
        const [client, agent] = await Promise.all([stockClient(clientEnd), acceptAgentChannel(agentEnd, { identity: agentIdentity, handshakeTimeoutMs: 5000 })]);
        const received = collect(agent);
        const plaintext = Buffer.concat(messages.map(frame));
        // Each piece is one write, which stock libp2p-noise encrypts as one record (or more, above 65,519 bytes).
        await client.sink((async function* () {
          for (const piece of cut(plaintext, fractions)) yield piece;
        })());
        await received.closed;
        expect(received.messages).toEqual(messages);
        agent.close();
      }),
      { numRuns: 25 },
    );
  });

  it('takes an abort frame split across records from a stock sender', async () => {
    const [clientEnd, agentEnd] = createMemoryDuplexPair({ capacityChunks: 64 });
    const [client, agent] = await Promise.all([stockClient(clientEnd), acceptAgentChannel(agentEnd, { identity: agentIdentity, handshakeTimeoutMs: 5000 })]);
    const received = collect(agent);
    const bytes = Buffer.concat([frame('first'), abortFrame('going away: ünïcödé')]);
    // Cut inside the second message's marker, inside its reason length and inside its reason.
    const pieces = [bytes.subarray(0, 11), bytes.subarray(11, 15), bytes.subarray(15, 20), bytes.subarray(20)];
    void client.sink((async function* () {
      for (const piece of pieces) yield piece;
    })());
    const error = await received.closed;
    expect(received.messages).toEqual(['first']);
    expect(error?.message).toContain('secure channel closed by the peer: going away: ünïcödé');
  });

  it('sends bytes a stock libp2p-noise receiver decrypts and frames as before', async () => {
    const [clientEnd, agentEnd] = createMemoryDuplexPair({ capacityChunks: 64 });
    const [client, agent] = await Promise.all([openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: agentIdentity.publicIdentity, handshakeTimeoutMs: 5000 }), stockAgent(agentEnd)]);
    const messages = ['{"id":1}', '', 'ü'.repeat(40_000), 'y'.repeat(200_000), '{"method":"x"}'];
    for (const message of messages) await client.send(message);
    client.close();
    const plain = new Uint8ArrayList();
    for await (const chunk of agent.source) plain.append(chunk);
    const out: string[] = [];
    let offset = 0;
    const bytes = plain.subarray();
    while (offset < bytes.length) {
      const length = Buffer.from(bytes.buffer, bytes.byteOffset + offset, 4).readUInt32BE(0);
      out.push(Buffer.from(bytes.subarray(offset + 4, offset + 4 + length)).toString('utf8'));
      offset += 4 + length;
    }
    expect(out).toEqual(messages);
  });

  it('reads the Noise byte stream whatever its chunking (messages split across chunks, several per chunk)', async () => {
    await fc.assert(
      fc.asyncProperty(texts, fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 8 }), async (messages, sizes) => {
        const [clientEnd, agentEnd] = createMemoryDuplexPair({ capacityChunks: 64 });
        const reChunkedAgentEnd: ByteDuplex = { source: rechunked(agentEnd.source, sizes), sink: agentEnd.sink };
        const [client, agent] = await Promise.all([
          openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: agentIdentity.publicIdentity, handshakeTimeoutMs: 5000 }),
          acceptAgentChannel(reChunkedAgentEnd, { identity: agentIdentity, handshakeTimeoutMs: 5000 }),
        ]);
        const received = collect(agent);
        for (const message of messages) await client.send(message);
        client.close();
        await received.closed;
        expect(received.messages).toEqual(messages);
      }),
      { numRuns: 25 },
    );
  });
});
