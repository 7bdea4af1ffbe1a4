/**
 * The codex relay frame codec: the byte layout 0.169.0 was observed to send, protobuf decoding rules
 * (unknown fields, explicit defaults, repeated fields), every refusal reason, and properties: the
 * decoder never throws, and decode(encode(frame)) is the frame.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CODEX_RELAY_FRAME_FAULTS,
  CodexRelayFrameEncodeError,
  MAX_CODEX_RELAY_FRAME_BYTES,
  MAX_CODEX_RESET_REASON_BYTES,
  MAX_CODEX_STREAM_ID_BYTES,
  decodeCodexRelayFrame,
  encodeCodexRelayFrame,
  type CodexRelayBody,
  type CodexRelayFrame,
  type CodexRelayFrameFault,
} from '../../../../src/codex-relay-frame/codex-relay-frame.js';

const STREAM_ID = '7cbf4163-a432-4e35-b92a-ecca4cc33645';
const id = Buffer.from(STREAM_ID);
const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
/** A frame with the header fields given raw, then `rest` (bytes after the stream id). */
const raw = (...parts: Uint8Array[]) => Buffer.concat(parts);
const header = raw(hex('0801 1224'), id);

function decoded(bytes: Uint8Array): CodexRelayFrame {
  const result = decodeCodexRelayFrame(bytes);
  if (!result.ok) throw new Error(`expected a frame, got ${result.fault}: ${result.message}`);
  return result.frame;
}

function fault(bytes: Uint8Array): CodexRelayFrameFault {
  const result = decodeCodexRelayFrame(bytes);
  if (result.ok) throw new Error('expected a refusal, got a frame');
  expect(CODEX_RELAY_FRAME_FAULTS).toContain(result.fault);
  return result.fault;
}

describe('codex relay frame: the bytes 0.169.0 sends and accepts', () => {
  it('encodes a data frame exactly like the executor (seq 0 and segment_index omitted, segment_count 1)', () => {
    const payload = Buffer.alloc(1065, 0xab);
    const frame = Buffer.from(encodeCodexRelayFrame({ streamId: STREAM_ID, body: { type: 'data', seq: 0, payload } }));
    expect(frame.length).toBe(1113);
    expect(frame.equals(raw(header, hex('2a ae08 1801 22 a908'), payload))).toBe(true);
    expect(decoded(frame)).toEqual({ streamId: STREAM_ID, ack: 0, ackBits: 0, body: { type: 'data', seq: 0, payload } });
  });

  it('has the observed sizes: Resume 42 B, Handshake(msg1 3604 B) 3650 B, Handshake(msg2 3424 B) 3470 B', () => {
    expect(encodeCodexRelayFrame({ streamId: STREAM_ID, body: { type: 'resume', nextSeq: 0 } }).length).toBe(42);
    expect(encodeCodexRelayFrame({ streamId: STREAM_ID, body: { type: 'handshake', payload: Buffer.alloc(3604, 1) } }).length).toBe(3650);
    expect(encodeCodexRelayFrame({ streamId: STREAM_ID, body: { type: 'handshake', payload: Buffer.alloc(3424, 1) } }).length).toBe(3470);
  });

  it('writes each body under its field number', () => {
    const body = (b: CodexRelayBody) => Buffer.from(encodeCodexRelayFrame({ streamId: STREAM_ID, body: b })).subarray(header.length);
    expect(body({ type: 'ack' }).toString('hex')).toBe('3200');
    expect(body({ type: 'resume', nextSeq: 300 }).toString('hex')).toBe('3a0308ac02');
    expect(body({ type: 'reset', reason: 'noise_relay_protocol_error' }).toString('hex')).toBe(`421c0a1a${Buffer.from('noise_relay_protocol_error').toString('hex')}`);
    expect(body({ type: 'heartbeat' }).toString('hex')).toBe('4a00');
    expect(body({ type: 'handshake', payload: Buffer.from([9]) }).toString('hex')).toBe('52030a0109');
    expect(body({ type: 'data', seq: 1, payload: Buffer.from([7]) }).toString('hex')).toBe('2a07080118012201' + '07');
  });

  it('writes ack and ack_bits as fields 3 and 4 when set', () => {
    const frame = Buffer.from(encodeCodexRelayFrame({ streamId: 's', ack: 5, ackBits: 3, body: { type: 'heartbeat' } }));
    expect(frame.toString('hex')).toBe('0801120173' + '1805' + '2003' + '4a00');
    expect(decoded(frame)).toMatchObject({ ack: 5, ackBits: 3 });
  });

  it('accepts explicit defaults (protobufjs style), fields in any order, and skips unknown fields of every wire type', () => {
    const frame = raw(
      hex('5a 03 616263'), // field 11 (an unknown body) as bytes: skipped
      hex('2a 0c 0800 1000 1801 2204 01020304'), // data with explicit seq 0 and segment_index 0
      hex('78 05'), // field 15 varint
      hex('81 01 0102030405060708'), // field 16 fixed64
      hex('8d 01 01020304'), // field 17 fixed32
      hex('1800 2000'), // explicit ack 0, ack_bits 0
      hex('1224'), id,
      hex('0801'),
    );
    expect(decoded(frame)).toEqual({ streamId: STREAM_ID, ack: 0, ackBits: 0, body: { type: 'data', seq: 0, payload: Buffer.from([1, 2, 3, 4]) } });
  });

  it('keeps the last value of a repeated scalar, merges a repeated body, and lets a later body replace another', () => {
    expect(decoded(raw(hex('0802'), header, hex('4a00'))).streamId).toBe(STREAM_ID); // version 2 then 1: the last wins
    const merged = decoded(raw(header, hex('2a02 0807'), hex('2a05 1801 2201ff')));
    expect(merged.body).toEqual({ type: 'data', seq: 7, payload: Buffer.from([0xff]) });
    expect(decoded(raw(header, hex('2a05 1801 2201ff'), hex('4a00'))).body).toEqual({ type: 'heartbeat' });
  });

  it('truncates a uint32 varint longer than 32 bits as prost does', () => {
    // seq = 2^32 + 5 in a 5-byte varint, and a 10-byte varint of all ones in its low 32 bits
    expect(decoded(raw(header, hex('2a0b 08 8580808010 1801 2201 aa'))).body).toMatchObject({ seq: 5 });
    expect(decoded(raw(header, hex('2a10 08ffffffffffffffffff01 1801 2201 aa'))).body).toMatchObject({ seq: 0xffff_ffff });
  });
});

describe('codex relay frame: refusals (dropped by 0.169.0 too)', () => {
  const cases: Array<[string, Uint8Array, CodexRelayFrameFault]> = [
    ['version 2', raw(hex('0802 1224'), id, hex('4a00')), 'bad-version'],
    ['no version', raw(hex('1224'), id, hex('4a00')), 'bad-version'],
    ['empty stream_id', hex('0801 1200 4a00'), 'missing-stream-id'],
    ['no stream_id', hex('0801 4a00'), 'missing-stream-id'],
    ['no body', header, 'missing-body'],
    ['only an unknown body (field 11)', raw(header, hex('5a00')), 'missing-body'],
    ['segment_count 0', raw(header, hex('2a03 2201 aa')), 'bad-segment'],
    ['segment_count 2', raw(header, hex('2a05 1802 2201 aa')), 'bad-segment'],
    ['segment_index 1', raw(header, hex('2a07 1001 1802 2201 aa')), 'bad-segment'],
    ['empty data payload', raw(header, hex('2a02 1801')), 'empty-payload'],
    ['empty handshake payload', raw(header, hex('5200')), 'empty-payload'],
    ['reset without reason', raw(header, hex('4200')), 'missing-reset-reason'],
    ['reset reason too long', raw(header, hex('42 8402 0a 8102'), Buffer.alloc(MAX_CODEX_RESET_REASON_BYTES + 1, 0x61)), 'reset-reason-too-long'],
    ['stream_id too long', raw(hex('0801 12 8108'), Buffer.alloc(MAX_CODEX_STREAM_ID_BYTES + 1, 0x61), hex('4a00')), 'stream-id-too-long'],
    ['stream_id not UTF-8', hex('0801 1202 c328 4a00'), 'malformed'],
    ['reset reason not UTF-8', raw(header, hex('4203 0a01 ff')), 'malformed'],
    ['version as bytes (wrong wire type)', raw(hex('0a00 1224'), id, hex('4a00')), 'malformed'],
    ['body as varint (wrong wire type)', raw(header, hex('4800')), 'malformed'],
    ['truncated length', raw(header, hex('2a05 1801')), 'malformed'],
    ['truncated varint', raw(header, hex('2a02 08')), 'malformed'],
    ['truncated key', hex('80'), 'malformed'],
    ['field number 0', hex('0001'), 'malformed'],
    ['group wire type', raw(header, hex('5b')), 'malformed'],
    ['11-byte varint', raw(header, hex('18 ffffffffffffffffffff01')), 'malformed'],
    ['varint over 64 bits', raw(header, hex('18 ffffffffffffffffff7f')), 'malformed'],
    ['truncated fixed64', raw(header, hex('81 01 0102')), 'malformed'],
    ['too large', Buffer.alloc(MAX_CODEX_RELAY_FRAME_BYTES + 1), 'too-large'],
    ['empty input', new Uint8Array(0), 'bad-version'],
  ];
  for (const [name, bytes, expected] of cases) {
    it(`refuses ${name} as ${expected}`, () => expect(fault(bytes)).toBe(expected));
  }

  it('refuses to encode what it would refuse to decode', () => {
    const bad: Array<() => unknown> = [
      () => encodeCodexRelayFrame({ streamId: '', body: { type: 'heartbeat' } }),
      () => encodeCodexRelayFrame({ streamId: 'x'.repeat(MAX_CODEX_STREAM_ID_BYTES + 1), body: { type: 'heartbeat' } }),
      () => encodeCodexRelayFrame({ streamId: 's', body: { type: 'data', seq: 0, payload: new Uint8Array(0) } }),
      () => encodeCodexRelayFrame({ streamId: 's', body: { type: 'data', seq: -1, payload: Buffer.from([1]) } }),
      () => encodeCodexRelayFrame({ streamId: 's', body: { type: 'data', seq: 2 ** 32, payload: Buffer.from([1]) } }),
      () => encodeCodexRelayFrame({ streamId: 's', body: { type: 'handshake', payload: new Uint8Array(0) } }),
      () => encodeCodexRelayFrame({ streamId: 's', body: { type: 'reset', reason: '' } }),
      () => encodeCodexRelayFrame({ streamId: 's', body: { type: 'reset', reason: 'r'.repeat(MAX_CODEX_RESET_REASON_BYTES + 1) } }),
      () => encodeCodexRelayFrame({ streamId: 's', ack: 1.5, body: { type: 'ack' } }),
      () => encodeCodexRelayFrame({ streamId: 's', body: { type: 'data', seq: 0, payload: new Uint8Array(MAX_CODEX_RELAY_FRAME_BYTES) } }),
    ];
    for (const attempt of bad) expect(attempt).toThrow(CodexRelayFrameEncodeError);
  });
});

const uint32 = fc.integer({ min: 0, max: 0xffff_ffff });
const payload = fc.uint8Array({ minLength: 1, maxLength: 300 });
const bodyArbitrary: fc.Arbitrary<CodexRelayBody> = fc.oneof(
  fc.record({ type: fc.constant('data' as const), seq: uint32, payload }),
  fc.constant({ type: 'ack' as const }),
  fc.record({ type: fc.constant('resume' as const), nextSeq: uint32 }),
  fc.record({ type: fc.constant('reset' as const), reason: fc.string({ minLength: 1, maxLength: 64 }) }),
  fc.constant({ type: 'heartbeat' as const }),
  fc.record({ type: fc.constant('handshake' as const), payload }),
);
const frameArbitrary: fc.Arbitrary<CodexRelayFrame> = fc.record({
  streamId: fc.oneof(fc.uuid(), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 })),
  ack: uint32,
  ackBits: uint32,
  body: bodyArbitrary,
});

describe('codex relay frame: properties', () => {
  it('decode(encode(frame)) is the frame', () => {
    fc.assert(
      fc.property(frameArbitrary, (frame) => {
        const result = decodeCodexRelayFrame(encodeCodexRelayFrame(frame));
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        const normalize = (f: CodexRelayFrame) => JSON.parse(JSON.stringify(f, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v))) as unknown;
        expect(normalize(result.frame)).toEqual(normalize(frame));
      }),
      { numRuns: 500 },
    );
  });

  it('the decoder never throws on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        const result = decodeCodexRelayFrame(bytes);
        if (!result.ok) expect(CODEX_RELAY_FRAME_FAULTS).toContain(result.fault);
      }),
      { numRuns: 3000 },
    );
  });

  it('the decoder never throws on valid frames with bytes changed, cut or appended', () => {
    fc.assert(
      fc.property(frameArbitrary, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 16 }), (frame, position, value, tail) => {
        const bytes = Buffer.from(encodeCodexRelayFrame(frame));
        const at = position % bytes.length;
        const changed = Buffer.from(bytes);
        changed[at] = value;
        for (const variant of [changed, bytes.subarray(0, at), Buffer.concat([bytes, tail])]) {
          const result = decodeCodexRelayFrame(variant);
          if (!result.ok) expect(CODEX_RELAY_FRAME_FAULTS).toContain(result.fault);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
