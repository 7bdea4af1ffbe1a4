import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BINARY_MESSAGE_MAGIC,
  BINARY_OUTPUT_HEADER_BYTES,
  decodeBinaryMessage,
  encodeBinaryProcessOutput,
  isBinaryMessage,
} from '../../../../src/protocol/binary-output.js';

describe('binary output message', () => {
  it('round-trips processId, seq (up to 2^53 - 1), stream and every byte value', () => {
    const chunk = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    for (const [processId, seq, stream] of [
      ['p1', 1, 'stdout'],
      ['é-process-ünïcode', 2 ** 32 + 5, 'stderr'],
      ['x'.repeat(255), Number.MAX_SAFE_INTEGER, 'pty'],
    ] as const) {
      const encoded = encodeBinaryProcessOutput(processId, seq, stream, chunk)!;
      expect(encoded[0]).toBe(BINARY_MESSAGE_MAGIC);
      expect(isBinaryMessage(encoded)).toBe(true);
      const decoded = decodeBinaryMessage(encoded);
      expect(decoded).toEqual({ ok: true, message: { processId, seq, stream, chunk } });
    }
    expect(decodeBinaryMessage(encodeBinaryProcessOutput('p', 0, 'stdout', Buffer.alloc(0))!)).toMatchObject({ ok: true, message: { chunk: Buffer.alloc(0) } });
  });

  it('refuses to encode what it cannot carry (the caller sends JSON instead)', () => {
    expect(encodeBinaryProcessOutput('x'.repeat(256), 1, 'stdout', Buffer.alloc(1))).toBeUndefined();
    expect(encodeBinaryProcessOutput('', 1, 'stdout', Buffer.alloc(1))).toBeUndefined();
    expect(encodeBinaryProcessOutput('p', -1, 'stdout', Buffer.alloc(1))).toBeUndefined();
    expect(encodeBinaryProcessOutput('p', 2 ** 53, 'stdout', Buffer.alloc(1))).toBeUndefined();
  });

  it('never throws on malformed input and names what is wrong', () => {
    const good = encodeBinaryProcessOutput('abc', 7, 'stdout', Buffer.from('hi'))!;
    const with_ = (offset: number, value: number) => {
      const copy = Buffer.from(good);
      copy[offset] = value;
      return copy;
    };
    expect(decodeBinaryMessage(new Uint8Array(0))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(good.subarray(0, BINARY_OUTPUT_HEADER_BYTES - 1))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(good.subarray(0, BINARY_OUTPUT_HEADER_BYTES + 2))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(with_(0, 0x7b))).toEqual({ ok: false, reason: 'bad-magic' });
    expect(decodeBinaryMessage(with_(1, 2))).toEqual({ ok: false, reason: 'unknown-kind' });
    expect(decodeBinaryMessage(with_(2, 3))).toEqual({ ok: false, reason: 'unknown-stream' });
    expect(decodeBinaryMessage(with_(3, 0))).toEqual({ ok: false, reason: 'empty-process-id' });
    expect(decodeBinaryMessage(with_(4, 0x20))).toEqual({ ok: false, reason: 'seq-out-of-range' });
    expect(decodeBinaryMessage(with_(BINARY_OUTPUT_HEADER_BYTES, 0xff))).toEqual({ ok: false, reason: 'process-id-not-utf8' });
  });

  it('a JSON text is never taken for a binary message (the magic is no first byte of UTF-8 text)', () => {
    expect(isBinaryMessage(Buffer.from('{"id":1}'))).toBe(false);
    expect(isBinaryMessage(Buffer.from('\uFEFF{"id":1}'))).toBe(false);
    expect(() => new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from([BINARY_MESSAGE_MAGIC, 0x7b]))).toThrow();
  });

  it('fuzz: 20,000 random and mutated messages decode to ok or a reason, never a throw', () => {
    const base = encodeBinaryProcessOutput('proc', 42, 'pty', randomBytes(64))!;
    for (let i = 0; i < 20_000; i++) {
      const input = i % 2 === 0 ? randomBytes(i % 80) : Buffer.from(base);
      if (i % 2 === 1) for (let k = 0; k < 3; k++) input[(i * 7 + k * 13) % input.length] = (i * 31 + k) & 0xff;
      const result = decodeBinaryMessage(input);
      expect(typeof result.ok).toBe('boolean');
    }
  });
});
