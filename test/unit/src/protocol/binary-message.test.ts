import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  BINARY_MESSAGE_MAGIC,
  BINARY_OUTPUT_HEADER_BYTES,
  BINARY_READ_BLOCK_HEADER_BYTES,
  BINARY_WRITE_BLOCK_HEADER_BYTES,
  decodeBinaryMessage,
  encodeBinaryProcessOutput,
  encodeBinaryReadBlockResult,
  encodeBinaryWriteBlock,
  isBinaryMessage,
} from '../../../../src/protocol/binary-message.js';
import { FS_LIMITS } from '../../../../src/protocol/fs-limits.js';

describe('binary messages', () => {
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
      expect(decoded).toEqual({ ok: true, message: { kind: 'processOutput', processId, seq, stream, chunk } });
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
    expect(decodeBinaryMessage(Buffer.from([BINARY_MESSAGE_MAGIC]))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(good.subarray(0, BINARY_OUTPUT_HEADER_BYTES - 1))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(good.subarray(0, BINARY_OUTPUT_HEADER_BYTES + 2))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(with_(0, 0x7b))).toEqual({ ok: false, reason: 'bad-magic' });
    for (const kind of [0, 4, 0xff]) expect(decodeBinaryMessage(with_(1, kind))).toEqual({ ok: false, reason: 'unknown-kind' });
    expect(decodeBinaryMessage(with_(2, 3))).toEqual({ ok: false, reason: 'unknown-stream' });
    expect(decodeBinaryMessage(with_(3, 0))).toEqual({ ok: false, reason: 'empty-process-id' });
    expect(decodeBinaryMessage(with_(4, 0x20))).toEqual({ ok: false, reason: 'seq-out-of-range' });
    expect(decodeBinaryMessage(with_(BINARY_OUTPUT_HEADER_BYTES, 0xff))).toEqual({ ok: false, reason: 'process-id-not-utf8' });
  });

  it('fs/writeBlock request: round-trips request id, offset and handleId (up to their bounds) and every byte value', () => {
    const chunk = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    for (const [requestId, handleId, offset] of [
      [1, 'h', 0],
      [2 ** 32 + 7, 'ünïcode-handle', 2 ** 40 + 3],
      [Number.MAX_SAFE_INTEGER, 'x'.repeat(255), Number.MAX_SAFE_INTEGER],
    ] as const) {
      const encoded = encodeBinaryWriteBlock(requestId, handleId, offset, chunk)!;
      expect([encoded[0], encoded[1]]).toEqual([BINARY_MESSAGE_MAGIC, 2]);
      expect(encoded.length).toBe(BINARY_WRITE_BLOCK_HEADER_BYTES + Buffer.byteLength(handleId) + 256);
      expect(decodeBinaryMessage(encoded)).toEqual({ ok: true, message: { kind: 'fsWriteBlock', requestId, handleId, offset, chunk } });
    }
    expect(decodeBinaryMessage(encodeBinaryWriteBlock(0, 'h', 0, Buffer.alloc(0))!)).toMatchObject({ ok: true, message: { chunk: Buffer.alloc(0) } });
  });

  it('fs/writeBlock request: refuses to encode what it cannot carry (the client sends JSON instead)', () => {
    const one = Buffer.alloc(1);
    expect(encodeBinaryWriteBlock(1, '', 0, one)).toBeUndefined();
    expect(encodeBinaryWriteBlock(1, 'x'.repeat(256), 0, one)).toBeUndefined();
    expect(encodeBinaryWriteBlock(1, 'é'.repeat(128), 0, one)).toBeUndefined(); // 256 UTF-8 bytes
    expect(encodeBinaryWriteBlock(-1, 'h', 0, one)).toBeUndefined();
    expect(encodeBinaryWriteBlock(1.5, 'h', 0, one)).toBeUndefined();
    expect(encodeBinaryWriteBlock(2 ** 53, 'h', 0, one)).toBeUndefined();
    expect(encodeBinaryWriteBlock(1, 'h', -1, one)).toBeUndefined();
    expect(encodeBinaryWriteBlock(1, 'h', 2 ** 53, one)).toBeUndefined();
    expect(encodeBinaryWriteBlock(1, 'h', Number.NaN, one)).toBeUndefined();
  });

  it('fs/writeBlock request: every malformed input is a reason, with the request id once it was read', () => {
    const good = encodeBinaryWriteBlock(9, 'abc', 5, Buffer.from('hi'))!;
    const with_ = (offset: number, value: number) => {
      const copy = Buffer.from(good);
      copy[offset] = value;
      return copy;
    };
    expect(decodeBinaryMessage(good.subarray(0, 2))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(good.subarray(0, BINARY_WRITE_BLOCK_HEADER_BYTES - 1))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(with_(3, 0x20))).toEqual({ ok: false, reason: 'request-id-out-of-range' });
    expect(decodeBinaryMessage(with_(2, 0))).toEqual({ ok: false, reason: 'empty-handle-id', requestId: 9 });
    expect(decodeBinaryMessage(good.subarray(0, BINARY_WRITE_BLOCK_HEADER_BYTES + 2))).toEqual({ ok: false, reason: 'truncated', requestId: 9 });
    expect(decodeBinaryMessage(with_(2, 200))).toEqual({ ok: false, reason: 'truncated', requestId: 9 });
    expect(decodeBinaryMessage(with_(11, 0x20))).toEqual({ ok: false, reason: 'offset-out-of-range', requestId: 9 });
    expect(decodeBinaryMessage(with_(BINARY_WRITE_BLOCK_HEADER_BYTES, 0xff))).toEqual({ ok: false, reason: 'handle-id-not-utf8', requestId: 9 });
    // The largest values are accepted, one more is not.
    const max = Buffer.from(good);
    max.writeUInt32BE(0x1f_ffff, 3);
    max.writeUInt32BE(0xffff_ffff, 7);
    expect(decodeBinaryMessage(max)).toMatchObject({ ok: true, message: { requestId: Number.MAX_SAFE_INTEGER } });
    max.writeUInt32BE(0x20_0000, 3);
    max.writeUInt32BE(0, 7);
    expect(decodeBinaryMessage(max)).toEqual({ ok: false, reason: 'request-id-out-of-range' });
  });

  it('fs/readBlock result: round-trips request id, eof and every byte value, up to 1 MiB of chunk', () => {
    const chunk = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    for (const [requestId, eof] of [
      [0, false],
      [2 ** 33, true],
      [Number.MAX_SAFE_INTEGER, true],
    ] as const) {
      const encoded = encodeBinaryReadBlockResult(requestId, eof, chunk)!;
      expect([encoded[0], encoded[1], encoded[2]]).toEqual([BINARY_MESSAGE_MAGIC, 3, eof ? 1 : 0]);
      expect(decodeBinaryMessage(encoded)).toEqual({ ok: true, message: { kind: 'fsReadBlockResult', requestId, eof, chunk } });
    }
    const full = decodeBinaryMessage(encodeBinaryReadBlockResult(4, false, Buffer.alloc(FS_LIMITS.maxReadBlockBytes, 7))!);
    if (!full.ok) throw new Error(full.reason);
    expect(full.message.chunk.equals(Buffer.alloc(FS_LIMITS.maxReadBlockBytes, 7))).toBe(true);
    expect(decodeBinaryMessage(encodeBinaryReadBlockResult(4, true, Buffer.alloc(0))!)).toMatchObject({ ok: true, message: { eof: true, chunk: Buffer.alloc(0) } });
    for (const bad of [-1, 0.5, 2 ** 53, Number.POSITIVE_INFINITY]) expect(encodeBinaryReadBlockResult(bad, false, chunk)).toBeUndefined();
  });

  it('fs/readBlock result: every malformed input is a reason, with the request id once it was read', () => {
    const good = encodeBinaryReadBlockResult(11, true, Buffer.from('data'))!;
    const with_ = (offset: number, value: number) => {
      const copy = Buffer.from(good);
      copy[offset] = value;
      return copy;
    };
    expect(decodeBinaryMessage(good.subarray(0, BINARY_READ_BLOCK_HEADER_BYTES - 1))).toEqual({ ok: false, reason: 'truncated' });
    expect(decodeBinaryMessage(with_(3, 0xff))).toEqual({ ok: false, reason: 'request-id-out-of-range' });
    expect(decodeBinaryMessage(with_(2, 2))).toEqual({ ok: false, reason: 'bad-eof', requestId: 11 });
    const tooLong = encodeBinaryReadBlockResult(12, false, Buffer.alloc(FS_LIMITS.maxReadBlockBytes + 1))!;
    expect(decodeBinaryMessage(tooLong)).toEqual({ ok: false, reason: 'chunk-too-long', requestId: 12 });
  });

  it('a JSON text is never taken for a binary message (the magic is no first byte of UTF-8 text)', () => {
    expect(isBinaryMessage(Buffer.from('{"id":1}'))).toBe(false);
    expect(isBinaryMessage(Buffer.from('\uFEFF{"id":1}'))).toBe(false);
    expect(() => new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from([BINARY_MESSAGE_MAGIC, 0x7b]))).toThrow();
  });

  it('fuzz: 30,000 random and mutated messages of every kind decode to ok or a reason, never a throw', () => {
    const bases = [
      encodeBinaryProcessOutput('proc', 42, 'pty', randomBytes(64))!,
      encodeBinaryWriteBlock(77, 'handle', 1234, randomBytes(64))!,
      encodeBinaryReadBlockResult(78, false, randomBytes(64))!,
    ];
    for (let i = 0; i < 30_000; i++) {
      const base = bases[i % 3]!;
      const input = i % 2 === 0 ? Buffer.concat([Buffer.from([BINARY_MESSAGE_MAGIC, (i >> 1) % 4]), randomBytes(i % 80)]) : Buffer.from(base.subarray(0, base.length - (i % 7)));
      if (i % 2 === 1) for (let k = 0; k < 3; k++) input[2 + ((i * 7 + k * 13) % (input.length - 2))] = (i * 31 + k) & 0xff;
      const result = decodeBinaryMessage(input);
      expect(typeof result.ok).toBe('boolean');
      if (!result.ok) expect(result.reason).toMatch(/^[a-z0-9-]+$/);
    }
  });
});
