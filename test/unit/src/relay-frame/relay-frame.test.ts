import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  MAX_DATA_FRAME_BYTES,
  MAX_OPEN_PAYLOAD_BYTES,
  MAX_RELAY_FRAME_BYTES,
  MAX_RESET_REASON_BYTES,
  MAX_SEGMENT_PAYLOAD_BYTES,
  MAX_SEQ,
  NO_ACK,
  FRAME_HEADER_BYTES,
} from '../../../../src/relay-frame/limits.js';
import {
  FRAME_TAG,
  RelayFrameDecodeError,
  RelayFrameEncodeError,
  ackBitsInclude,
  clampResetReason,
  decodeRelayFrame,
  decodeRelayFrameOrThrow,
  encodeRelayFrame,
  peekHeader,
  streamIdFromBytes,
  streamIdToBytes,
  type RelayFrameBody,
  type RelayFrameErrorCode,
  type RelayFrameInit,
} from '../../../../src/relay-frame/relay-frame.js';

const STREAM_ID = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

function frame(body: RelayFrameBody, ack = 41, ackBits = 0b1011): RelayFrameInit {
  return { streamId: STREAM_ID, ack, ackBits, body };
}

function expectDecodeError(bytes: Uint8Array, code: RelayFrameErrorCode): void {
  const result = decodeRelayFrame(bytes);
  expect(result.ok).toBe(false);
  if (!result.ok) {
    expect(result.error).toBeInstanceOf(RelayFrameDecodeError);
    expect(result.error.code).toBe(code);
  }
}

/** Writes a u32 big-endian into a copy of `bytes`. */
function withU32(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint32(offset, value);
  return copy;
}

function withU16(bytes: Uint8Array, offset: number, value: number): Uint8Array {
  const copy = bytes.slice();
  new DataView(copy.buffer).setUint16(offset, value);
  return copy;
}

const allBodies: RelayFrameBody[] = [
  { type: 'open', payload: new Uint8Array([1, 2, 3]) },
  { type: 'open', payload: new Uint8Array(0) },
  { type: 'data', seq: 7, segmentIndex: 2, segmentCount: 5, payload: new Uint8Array([9, 8, 7, 6]) },
  { type: 'data', seq: 0, segmentIndex: 0, segmentCount: 1, payload: new Uint8Array(0) },
  { type: 'ack' },
  { type: 'resume', nextSeq: 123_456 },
  { type: 'reset', reason: 'limit exceeded: streams per executor — ünïcødé ✓' },
  { type: 'reset', reason: '' },
  { type: 'heartbeat' },
  { type: 'close' },
];

describe('relay frame: layout and round trips', () => {
  it.each(allBodies.map((body) => [body.type, body] as const))('round-trips a %s frame', (_type, body) => {
    const bytes = encodeRelayFrame(frame(body));
    const decoded = decodeRelayFrameOrThrow(bytes);
    expect(decoded.version).toBe(1);
    expect(decoded.streamId).toBe(STREAM_ID);
    expect(decoded.ack).toBe(41);
    expect(decoded.ackBits).toBe(0b1011);
    expect(decoded.body).toEqual(body);
  });

  it('matches the documented byte layout exactly', () => {
    const bytes = encodeRelayFrame({
      streamId: STREAM_ID,
      ack: 0x0102_0304,
      ackBits: 0x8000_0001,
      body: { type: 'data', seq: 0x0a0b_0c0d, segmentIndex: 0x0102, segmentCount: 0x0203, payload: new Uint8Array([0xee, 0xff]) },
    });
    const expected = [
      0x01, // version
      ...streamIdToBytes(STREAM_ID), // streamId
      FRAME_TAG.data, // tag = 2
      0x01, 0x02, 0x03, 0x05, // ackNext = ack + 1
      0x80, 0x00, 0x00, 0x01, // ackBits
      0x0a, 0x0b, 0x0c, 0x0d, // seq
      0x01, 0x02, // segmentIndex
      0x02, 0x03, // segmentCount
      0x00, 0x00, 0x00, 0x02, // payloadLength
      0xee, 0xff, // payload
    ];
    expect([...bytes]).toEqual(expected);
    expect(bytes[1]).toBe(0x0f);
    expect(bytes[16]).toBe(0xf0);
    expect(FRAME_HEADER_BYTES).toBe(26);
  });

  it('encodes "nothing received" as ackNext 0 and decodes it back to NO_ACK', () => {
    const bytes = encodeRelayFrame(frame({ type: 'ack' }, NO_ACK, 0));
    expect([...bytes.subarray(18, 22)]).toEqual([0, 0, 0, 0]);
    expect(decodeRelayFrameOrThrow(bytes).ack).toBe(-1);
    const top = decodeRelayFrameOrThrow(encodeRelayFrame(frame({ type: 'ack' }, MAX_SEQ, 0xffff_ffff)));
    expect(top.ack).toBe(MAX_SEQ);
    expect(top.ackBits).toBe(0xffff_ffff);
  });

  it('bodies without fields are header only; tags are fixed', () => {
    for (const type of ['ack', 'heartbeat', 'close'] as const) {
      const bytes = encodeRelayFrame(frame({ type }));
      expect(bytes.length).toBe(FRAME_HEADER_BYTES);
      expect(bytes[17]).toBe(FRAME_TAG[type]);
    }
    expect(FRAME_TAG).toEqual({ open: 1, data: 2, ack: 3, resume: 4, reset: 5, heartbeat: 6, close: 7 });
  });

  it('accepts the stream id as raw bytes and in upper case, always decodes lowercase', () => {
    const upper = STREAM_ID.toUpperCase();
    const fromUpper = encodeRelayFrame({ ...frame({ type: 'ack' }), streamId: upper });
    const fromBytes = encodeRelayFrame({ ...frame({ type: 'ack' }), streamId: streamIdToBytes(STREAM_ID) });
    expect(fromUpper).toEqual(fromBytes);
    expect(decodeRelayFrameOrThrow(fromUpper).streamId).toBe(STREAM_ID);
    expect(streamIdFromBytes(streamIdToBytes(upper))).toBe(STREAM_ID);
  });

  it('returns payloads as views of the input (no copy)', () => {
    const bytes = encodeRelayFrame(frame({ type: 'data', seq: 1, segmentIndex: 0, segmentCount: 1, payload: new Uint8Array([5, 6, 7]) }));
    const decoded = decodeRelayFrameOrThrow(bytes);
    if (decoded.body.type !== 'data') throw new Error('expected data');
    expect(decoded.body.payload.buffer).toBe(bytes.buffer);
    expect(decoded.body.payload.byteOffset).toBe(FRAME_HEADER_BYTES + 12);
  });

  it('handles a full-size data frame well under the 256 KiB frame limit', () => {
    const payload = new Uint8Array(MAX_SEGMENT_PAYLOAD_BYTES).fill(0xab);
    const bytes = encodeRelayFrame(frame({ type: 'data', seq: 70_000, segmentIndex: 65_534, segmentCount: 65_535, payload }));
    expect(bytes.length).toBe(MAX_DATA_FRAME_BYTES);
    expect(MAX_DATA_FRAME_BYTES).toBeLessThan(MAX_RELAY_FRAME_BYTES / 3);
    const decoded = decodeRelayFrameOrThrow(bytes);
    expect(decoded.body).toMatchObject({ type: 'data', segmentIndex: 65_534, segmentCount: 65_535 });
  });

  it('ackBitsInclude follows "bit i acknowledges ack + 1 + i"', () => {
    expect(ackBitsInclude(10, 0b101, 11)).toBe(true);
    expect(ackBitsInclude(10, 0b101, 12)).toBe(false);
    expect(ackBitsInclude(10, 0b101, 13)).toBe(true);
    expect(ackBitsInclude(10, 0x8000_0000, 42)).toBe(true);
    expect(ackBitsInclude(10, 0xffff_ffff, 10)).toBe(false);
    expect(ackBitsInclude(10, 0xffff_ffff, 43)).toBe(false);
    expect(ackBitsInclude(NO_ACK, 1, 0)).toBe(true);
  });
});

describe('relay frame: peekHeader', () => {
  it('reads version, stream id and type of every body', () => {
    for (const body of allBodies) {
      const result = peekHeader(encodeRelayFrame(frame(body)));
      expect(result).toEqual({ ok: true, header: { version: 1, streamId: STREAM_ID, type: body.type } });
    }
  });

  it('needs only the first 18 bytes and never parses the body', () => {
    const bytes = encodeRelayFrame(frame({ type: 'data', seq: 1, segmentIndex: 0, segmentCount: 1, payload: new Uint8Array(10) }));
    expect(peekHeader(bytes.subarray(0, 18))).toMatchObject({ ok: true, header: { type: 'data' } });
    // A body that would not decode still routes.
    const broken = withU16(bytes, 32, 0); // segmentCount 0
    expectDecodeError(broken, 'segment-count-zero');
    expect(peekHeader(broken)).toMatchObject({ ok: true, header: { type: 'data', streamId: STREAM_ID } });
  });

  it('refuses what cannot be routed', () => {
    const bytes = encodeRelayFrame(frame({ type: 'ack' }));
    expect(peekHeader(bytes.subarray(0, 17))).toMatchObject({ ok: false, error: { code: 'truncated' } });
    expect(peekHeader(new Uint8Array(0))).toMatchObject({ ok: false, error: { code: 'truncated' } });
    const v2 = bytes.slice();
    v2[0] = 2;
    expect(peekHeader(v2)).toMatchObject({ ok: false, error: { code: 'unsupported-version' } });
    const tag = bytes.slice();
    tag[17] = 99;
    expect(peekHeader(tag)).toMatchObject({ ok: false, error: { code: 'unknown-tag' } });
    expect(peekHeader(new Uint8Array(MAX_RELAY_FRAME_BYTES + 1))).toMatchObject({ ok: false, error: { code: 'frame-too-large' } });
  });
});

describe('relay frame: strict decoding', () => {
  const data = encodeRelayFrame(frame({ type: 'data', seq: 9, segmentIndex: 1, segmentCount: 3, payload: new Uint8Array([1, 2, 3, 4]) }));
  const DATA_SEQ = 26;
  const DATA_INDEX = 30;
  const DATA_COUNT = 32;
  const DATA_LENGTH = 34;

  it('rejects every truncation of every body type', () => {
    for (const body of allBodies) {
      const bytes = encodeRelayFrame(frame(body));
      for (let length = 0; length < bytes.length; length++) {
        const result = decodeRelayFrame(bytes.subarray(0, length));
        expect(result.ok, `${body.type} cut to ${length}`).toBe(false);
        if (!result.ok) expect(['truncated', 'unsupported-version']).toContain(result.error.code);
      }
    }
    expectDecodeError(new Uint8Array(0), 'truncated');
    expectDecodeError(data.subarray(0, data.length - 1), 'truncated');
  });

  it('rejects trailing bytes after every body type', () => {
    for (const body of allBodies) {
      const bytes = encodeRelayFrame(frame(body));
      const longer = new Uint8Array(bytes.length + 1);
      longer.set(bytes);
      expectDecodeError(longer, 'trailing-bytes');
    }
  });

  it('rejects an unknown version and an unknown tag (including 0)', () => {
    for (const version of [0, 2, 255]) {
      const bytes = data.slice();
      bytes[0] = version;
      expectDecodeError(bytes, 'unsupported-version');
    }
    for (const tag of [0, 8, 200]) {
      const bytes = data.slice();
      bytes[17] = tag;
      expectDecodeError(bytes, 'unknown-tag');
    }
    expectDecodeError(new Uint8Array(64), 'unsupported-version');
  });

  it('rejects segmentCount 0 and segmentIndex >= segmentCount', () => {
    expectDecodeError(withU16(data, DATA_COUNT, 0), 'segment-count-zero');
    expectDecodeError(withU16(data, DATA_INDEX, 3), 'segment-index-out-of-range');
    expectDecodeError(withU16(withU16(data, DATA_INDEX, 0xffff), DATA_COUNT, 0xffff), 'segment-index-out-of-range');
  });

  it('rejects seqs outside the seq space', () => {
    expectDecodeError(withU32(data, DATA_SEQ, 0xffff_ffff), 'seq-out-of-range');
    expectDecodeError(withU32(data, DATA_SEQ, 0), 'seq-out-of-range'); // segment 1 at seq 0: message starts at -1
    expectDecodeError(withU32(data, DATA_SEQ, MAX_SEQ), 'seq-out-of-range'); // segment 1/3 ends past MAX_SEQ
    expect(decodeRelayFrame(withU32(data, DATA_SEQ, MAX_SEQ - 1)).ok).toBe(true);
  });

  it('rejects a payload over the max segment size even if the bytes are there', () => {
    const big = encodeRelayFrame(frame({ type: 'data', seq: 0, segmentIndex: 0, segmentCount: 1, payload: new Uint8Array(MAX_SEGMENT_PAYLOAD_BYTES) }));
    const over = new Uint8Array(big.length + 1);
    over.set(big);
    new DataView(over.buffer).setUint32(DATA_LENGTH, MAX_SEGMENT_PAYLOAD_BYTES + 1);
    expectDecodeError(over, 'payload-too-large');
    expectDecodeError(withU32(data, DATA_LENGTH, 0xffff_ffff), 'payload-too-large');
    const open = encodeRelayFrame(frame({ type: 'open', payload: new Uint8Array(MAX_OPEN_PAYLOAD_BYTES) }));
    expect(decodeRelayFrame(open).ok).toBe(true);
    const openOver = new Uint8Array(open.length + 1);
    openOver.set(open);
    new DataView(openOver.buffer).setUint16(26, MAX_OPEN_PAYLOAD_BYTES + 1);
    expectDecodeError(openOver, 'payload-too-large');
  });

  it('rejects an over-long or non-UTF-8 reset reason', () => {
    const reset = encodeRelayFrame(frame({ type: 'reset', reason: 'x'.repeat(MAX_RESET_REASON_BYTES) }));
    expect(decodeRelayFrame(reset).ok).toBe(true);
    const longer = new Uint8Array(reset.length + 1);
    longer.set(reset);
    new DataView(longer.buffer).setUint16(26, MAX_RESET_REASON_BYTES + 1);
    expectDecodeError(longer, 'reason-too-long');
    const bad = encodeRelayFrame(frame({ type: 'reset', reason: 'ab' }));
    bad[28] = 0xff;
    expectDecodeError(bad, 'reason-not-utf8');
  });

  it('rejects a frame over the 256 KiB frame limit before reading it', () => {
    const huge = new Uint8Array(MAX_RELAY_FRAME_BYTES + 1);
    huge.set(data);
    expectDecodeError(huge, 'frame-too-large');
  });

  it('decodeRelayFrameOrThrow throws only RelayFrameDecodeError', () => {
    expect(() => decodeRelayFrameOrThrow(new Uint8Array([1]))).toThrow(RelayFrameDecodeError);
  });
});

describe('relay frame: encoder guards', () => {
  const encodeError = (init: RelayFrameInit, code: string) => {
    try {
      encodeRelayFrame(init);
    } catch (error) {
      expect(error).toBeInstanceOf(RelayFrameEncodeError);
      expect((error as RelayFrameEncodeError).code).toBe(code);
      return;
    }
    throw new Error('expected RelayFrameEncodeError');
  };

  it('refuses out-of-range fields with RelayFrameEncodeError', () => {
    encodeError({ ...frame({ type: 'ack' }), streamId: 'not-a-uuid' }, 'invalid-stream-id');
    encodeError({ ...frame({ type: 'ack' }), streamId: new Uint8Array(15) }, 'invalid-stream-id');
    encodeError(frame({ type: 'ack' }, -2), 'invalid-field');
    encodeError(frame({ type: 'ack' }, MAX_SEQ + 1), 'invalid-field');
    encodeError(frame({ type: 'ack' }, 1.5), 'invalid-field');
    encodeError(frame({ type: 'ack' }, 0, 2 ** 32), 'invalid-field');
    encodeError(frame({ type: 'data', seq: 1, segmentIndex: 0, segmentCount: 0, payload: new Uint8Array(0) }), 'invalid-field');
    encodeError(frame({ type: 'data', seq: 1, segmentIndex: 1, segmentCount: 1, payload: new Uint8Array(0) }), 'invalid-field');
    encodeError(frame({ type: 'data', seq: 0, segmentIndex: 1, segmentCount: 2, payload: new Uint8Array(0) }), 'invalid-field');
    encodeError(frame({ type: 'data', seq: 0, segmentIndex: 0, segmentCount: 1, payload: new Uint8Array(MAX_SEGMENT_PAYLOAD_BYTES + 1) }), 'payload-too-large');
    encodeError(frame({ type: 'open', payload: new Uint8Array(MAX_OPEN_PAYLOAD_BYTES + 1) }), 'payload-too-large');
    encodeError(frame({ type: 'reset', reason: 'é'.repeat(MAX_RESET_REASON_BYTES / 2 + 1) }), 'reason-too-long');
    encodeError(frame({ type: 'resume', nextSeq: -1 }), 'invalid-field');
    encodeError(frame({ type: 'bogus' } as unknown as RelayFrameBody), 'invalid-field');
  });

  it('clampResetReason cuts long reasons on a code point boundary', () => {
    expect(clampResetReason('short')).toBe('short');
    const long = 'é'.repeat(200) + '🙂'.repeat(50);
    const clamped = clampResetReason(long);
    expect(new TextEncoder().encode(clamped).length).toBeLessThanOrEqual(MAX_RESET_REASON_BYTES);
    expect(long.startsWith(clamped)).toBe(true);
    expect(clamped.length).toBe(128);
    const emoji = '🙂'.repeat(100);
    const cutEmoji = clampResetReason(emoji);
    expect(cutEmoji).toBe('🙂'.repeat(64));
    expect(decodeRelayFrameOrThrow(encodeRelayFrame(frame({ type: 'reset', reason: clampResetReason('x'.repeat(1000)) }))).body).toEqual({
      type: 'reset',
      reason: 'x'.repeat(256),
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const streamIdArb = fc.uuid();
const seqArb = fc.integer({ min: 0, max: MAX_SEQ });
const bodyArb: fc.Arbitrary<RelayFrameBody> = fc.oneof(
  fc.uint8Array({ maxLength: MAX_OPEN_PAYLOAD_BYTES }).map((payload) => ({ type: 'open' as const, payload })),
  fc
    .record({
      segmentCount: fc.integer({ min: 1, max: 0xffff }),
      indexFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      seqOffset: fc.integer({ min: 0, max: 1_000_000 }),
      payload: fc.uint8Array({ maxLength: 300 }),
    })
    .map(({ segmentCount, indexFraction, seqOffset, payload }) => {
      const segmentIndex = Math.min(segmentCount - 1, Math.floor(indexFraction * segmentCount));
      return { type: 'data' as const, seq: segmentIndex + seqOffset, segmentIndex, segmentCount, payload };
    }),
  fc.constant({ type: 'ack' as const }),
  fc.integer({ min: 0, max: MAX_SEQ + 1 }).map((nextSeq) => ({ type: 'resume' as const, nextSeq })),
  fc.string({ unit: 'grapheme', maxLength: 100 }).map((reason) => ({ type: 'reset' as const, reason: clampResetReason(reason) })),
  fc.constant({ type: 'heartbeat' as const }),
  fc.constant({ type: 'close' as const }),
);
const frameArb: fc.Arbitrary<RelayFrameInit> = fc.record({
  streamId: streamIdArb,
  ack: fc.oneof(fc.constant(NO_ACK), seqArb),
  ackBits: fc.integer({ min: 0, max: 0xffff_ffff }),
  body: bodyArb,
});

/** Outcomes seen by the fuzz properties, to check that they reach every rejection path. */
const outcomesSeen = new Map<string, number>();

/** Asserts the decoder's contract on an arbitrary input. */
function decodeNeverThrows(bytes: Uint8Array): void {
  let result: ReturnType<typeof decodeRelayFrame>;
  try {
    result = decodeRelayFrame(bytes);
  } catch (error) {
    throw new Error(`decodeRelayFrame threw ${String(error)}`);
  }
  const outcome = result.ok ? 'ok' : result.error.code;
  outcomesSeen.set(outcome, (outcomesSeen.get(outcome) ?? 0) + 1);
  if (result.ok) {
    // Anything that decodes re-encodes to the same bytes (the format is canonical).
    expect(encodeRelayFrame(result.frame)).toEqual(bytes);
  } else {
    expect(result.error).toBeInstanceOf(RelayFrameDecodeError);
  }
  const peek = peekHeader(bytes);
  if (!peek.ok) expect(peek.error).toBeInstanceOf(RelayFrameDecodeError);
  if (result.ok) expect(peek.ok).toBe(true);
}

type Mutation =
  | { kind: 'flip'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'splice'; at: number; bytes: Uint8Array }
  | { kind: 'field'; at: number; value: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('append' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), bytes: fc.uint8Array({ maxLength: 8 }) }),
  // Overwrite a header/body length or count field (the interesting offsets) with an extreme value.
  fc.record({
    kind: fc.constant('field' as const),
    at: fc.constantFrom(0, 17, 18, 22, 26, 28, 30, 32, 34),
    value: fc.constantFrom(0, 1, 2, 0xff, 0xffff, 0xffff_ffff, MAX_SEGMENT_PAYLOAD_BYTES + 1, 257, 1025),
  }),
);

function mutate(bytes: Uint8Array, mutations: readonly Mutation[]): Uint8Array {
  let out = bytes.slice();
  for (const m of mutations) {
    switch (m.kind) {
      case 'flip':
        if (out.length > 0) out[m.at % out.length] = m.value;
        break;
      case 'truncate':
        out = out.subarray(0, m.at % (out.length + 1));
        break;
      case 'append': {
        const next = new Uint8Array(out.length + m.bytes.length);
        next.set(out);
        next.set(m.bytes, out.length);
        out = next;
        break;
      }
      case 'splice': {
        const at = m.at % (out.length + 1);
        const next = new Uint8Array(out.length + m.bytes.length);
        next.set(out.subarray(0, at));
        next.set(m.bytes, at);
        next.set(out.subarray(at), at + m.bytes.length);
        out = next;
        break;
      }
      case 'field':
        if (m.at + 4 <= out.length) new DataView(out.buffer, out.byteOffset).setUint32(m.at, m.value >>> 0);
        else if (m.at < out.length) out[m.at] = m.value & 0xff;
        break;
    }
  }
  return out;
}

describe('relay frame: properties', () => {
  it('round-trips every valid frame (5,000 frames)', () => {
    fc.assert(
      fc.property(frameArb, (init) => {
        const bytes = encodeRelayFrame(init);
        const decoded = decodeRelayFrameOrThrow(bytes);
        expect(decoded.streamId).toBe(String(init.streamId).toLowerCase());
        expect(decoded.ack).toBe(init.ack);
        expect(decoded.ackBits).toBe(init.ackBits);
        expect(decoded.body).toEqual(init.body);
        expect(peekHeader(bytes)).toMatchObject({ ok: true, header: { type: init.body.type } });
      }),
      { numRuns: 5_000 },
    );
  });

  // Together these feed the decoder 105,000 inputs.
  it('never throws on random bytes (40,000 inputs)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), (bytes) => {
        decodeNeverThrows(bytes);
      }),
      { numRuns: 40_000 },
    );
  });

  it('never throws on random bytes behind a valid version byte and tag (25,000 inputs)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 8 }), fc.uint8Array({ maxLength: 80 }), (tag, rest) => {
        const bytes = new Uint8Array(18 + rest.length);
        bytes[0] = 1;
        bytes[17] = tag;
        bytes.set(rest, 18);
        decodeNeverThrows(bytes);
      }),
      { numRuns: 25_000 },
    );
  });

  it('never throws on mutated valid frames (40,000 inputs)', () => {
    fc.assert(
      fc.property(frameArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), (init, mutations) => {
        decodeNeverThrows(mutate(encodeRelayFrame(init), mutations));
      }),
      { numRuns: 40_000 },
    );
  });

  it('the fuzz inputs reached every outcome of the decoder', () => {
    const total = [...outcomesSeen.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(100_000);
    const codes: (RelayFrameErrorCode | 'ok')[] = [
      'ok',
      'truncated',
      'trailing-bytes',
      'unsupported-version',
      'unknown-tag',
      'segment-count-zero',
      'segment-index-out-of-range',
      'seq-out-of-range',
      'payload-too-large',
      'reason-too-long',
      'reason-not-utf8',
    ];
    for (const code of codes) expect(outcomesSeen.get(code) ?? 0, code).toBeGreaterThan(0);
  });
});
