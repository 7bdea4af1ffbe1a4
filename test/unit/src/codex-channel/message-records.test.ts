import { describe, expect, it } from 'vitest';
import { MessageReassembler, messageRecords } from '../../../../src/codex-channel/message-records.js';
import { CodexChannelError } from '../../../../src/codex-channel/codex-channel-error.js';
import { CODEX_RECORD_PLAINTEXT_BYTES } from '../../../../src/codex-channel/codex-channel-limits.js';

describe('JSON-RPC messages as codex records (protocol notes §8)', () => {
  it('frames a message as a 4-byte big-endian length and its UTF-8, cut at 60 KiB', () => {
    expect(messageRecords('{"a":"é"}')).toEqual([Buffer.concat([Buffer.from([0, 0, 0, 10]), Buffer.from('{"a":"é"}')])]);
    const big = JSON.stringify({ blob: 'x'.repeat(200 * 1024) });
    const records = messageRecords(big);
    expect(records.map((r) => r.length)).toEqual([CODEX_RECORD_PLAINTEXT_BYTES, CODEX_RECORD_PLAINTEXT_BYTES, CODEX_RECORD_PLAINTEXT_BYTES, 4 + big.length - 3 * CODEX_RECORD_PLAINTEXT_BYTES]);
  });

  it('reassembles a message spanning records and several messages in one record', () => {
    const big = JSON.stringify({ blob: 'y'.repeat(150_000) });
    const small = ['{"id":1}', '{"id":2}'];
    const reassembler = new MessageReassembler(64 * 1024 * 1024);
    const out: string[] = [];
    for (const record of messageRecords(big)) out.push(...reassembler.push(record));
    out.push(...reassembler.push(Buffer.concat(small.flatMap((m) => messageRecords(m)))));
    // Split a message's length prefix itself across two records.
    const tail = messageRecords('{"id":3}')[0]!;
    out.push(...reassembler.push(tail.subarray(0, 2)));
    out.push(...reassembler.push(tail.subarray(2)));
    expect(out).toEqual([big, ...small, '{"id":3}']);
  });

  it('refuses a zero length and one over the message cap', () => {
    expect(() => new MessageReassembler(100).push(Buffer.from([0, 0, 0, 0]))).toThrow(CodexChannelError);
    expect(() => new MessageReassembler(100).push(Buffer.from([0, 0, 0, 101]))).toThrow(/101 bytes \(allowed 1\.\.100\)/);
  });
});
