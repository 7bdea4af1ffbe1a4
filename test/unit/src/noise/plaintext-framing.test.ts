import { describe, expect, it } from 'vitest';
import {
  encodeAbortFrame,
  encodeBinaryFrameHeader,
  encodeMessageFrame,
  PlaintextFrameParser,
} from '../../../../src/noise/plaintext-framing.js';
import type { NoiseChannelError } from '../../../../src/noise/noise-channel-error.js';

function parse(stream: Uint8Array, cut: number, maxMessageBytes = 1 << 20) {
  const delivered: Array<{ binary: boolean; body: string }> = [];
  const failures: Array<{ code: string; notice?: string }> = [];
  const parser = new PlaintextFrameParser(maxMessageBytes, {
    deliver: async (body, binary) => {
      delivered.push({ binary, body: Buffer.from(body).toString('latin1') });
      return true;
    },
    fail: (error: NoiseChannelError, notice?: string) => {
      failures.push({ code: error.code, ...(notice ? { notice } : {}) });
    },
  });
  return (async () => {
    for (let offset = 0; offset < stream.byteLength; offset += cut) {
      if (!(await parser.accept(stream.subarray(offset, Math.min(offset + cut, stream.byteLength))))) break;
    }
    return { delivered, failures, partial: parser.partialBytes };
  })();
}

describe('plaintext framing: binary frames', () => {
  const binaryBody = Buffer.from([0xb1, 0, 0xff, 0xfe, 1, 2, 3]);
  const stream = Buffer.concat([
    encodeMessageFrame('{"a":1}', 7),
    encodeBinaryFrameHeader(binaryBody.byteLength),
    binaryBody,
    encodeBinaryFrameHeader(0),
    encodeMessageFrame('{"b":2}', 7),
  ]);

  it('keeps text and binary messages apart and in order, whatever the record cuts', async () => {
    for (const cut of [1, 2, 3, 5, 8, 13, stream.byteLength]) {
      const { delivered, failures, partial } = await parse(stream, cut);
      expect(failures).toEqual([]);
      expect(partial).toBe(0);
      expect(delivered).toEqual([
        { binary: false, body: '{"a":1}' },
        { binary: true, body: binaryBody.toString('latin1') },
        { binary: true, body: '' },
        { binary: false, body: '{"b":2}' },
      ]);
    }
  });

  it('refuses a binary frame declared above the message cap before allocating it (0xFFFFFFFF included)', async () => {
    for (const declared of [1025, 0xffffffff]) {
      const { delivered, failures } = await parse(encodeBinaryFrameHeader(declared), 3, 1024);
      expect(delivered).toEqual([]);
      expect(failures).toEqual([{ code: 'message-too-large', notice: `message of ${declared} bytes exceeds the maximum of 1024 bytes` }]);
    }
  });

  it('an abort frame still reads as an abort after binary frames', async () => {
    const { delivered, failures } = await parse(Buffer.concat([encodeBinaryFrameHeader(1), Buffer.from([9]), encodeAbortFrame('bye')]), 4);
    expect(delivered).toEqual([{ binary: true, body: '\t' }]);
    expect(failures).toEqual([{ code: 'peer-aborted' }]);
  });
});
