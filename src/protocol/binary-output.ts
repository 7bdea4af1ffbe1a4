/**
 * The binary output message (execrelay extension `binaryOutput`): `process/output` as raw bytes
 * instead of base64 inside JSON. Sent by an agent only on a connection whose client asked for it in
 * `initialized {binaryOutput: true}` after the agent offered `capabilities.binaryOutput` at
 * `initialize`; a codex peer never offers nor asks, so it never sees one. It travels as a binary
 * message of the transport (a WebSocket binary frame; a binary frame of the Noise channel's
 * plaintext framing), never on stdio.
 *
 * Wire layout. All integers are unsigned big-endian. This table is the single definition.
 *
 * | offset | size | field      | meaning                                                            |
 * |-------:|-----:|------------|--------------------------------------------------------------------|
 * |      0 |    1 | magic      | {@link BINARY_MESSAGE_MAGIC} (0xB1: never the first byte of UTF-8 text, so never JSON) |
 * |      1 |    1 | kind       | {@link BINARY_MESSAGE_KIND}: 1 = process output                    |
 * |      2 |    1 | stream     | 0 stdout, 1 stderr, 2 pty                                          |
 * |      3 |    1 | idLength   | UTF-8 length of processId, 1..255                                  |
 * |      4 |    8 | seq        | u64, ≤ 2^53 - 1 (the notification's `seq`)                         |
 * |     12 |    … | processId  | idLength bytes of UTF-8                                            |
 * |      … |    … | chunk      | the output bytes, the rest of the message (may be empty)           |
 *
 * The decoder never throws: a short message, an unknown kind or stream, a zero or invalid processId
 * or a seq above 2^53 - 1 is `{ok: false, reason}`. The message as a whole is bounded by the
 * transport's message cap (`DEFAULT_MAX_MESSAGE_BYTES`).
 */
import type { OutputStream } from './process.js';

/** First byte of every binary message: a UTF-8 continuation byte, so no JSON text starts with it. */
export const BINARY_MESSAGE_MAGIC = 0xb1;
export const BINARY_MESSAGE_KIND = { processOutput: 1 } as const;
/** Bytes before the processId. */
export const BINARY_OUTPUT_HEADER_BYTES = 12;
/** Longest processId a binary output message can carry (an agent falls back to JSON past it). */
export const MAX_BINARY_PROCESS_ID_BYTES = 255;

const STREAM_CODES: Record<OutputStream, number> = { stdout: 0, stderr: 1, pty: 2 };
const STREAMS: readonly OutputStream[] = ['stdout', 'stderr', 'pty'];
const TWO_POW_32 = 0x1_0000_0000;

export interface BinaryProcessOutput {
  processId: string;
  seq: number;
  stream: OutputStream;
  /** A view of the decoded message's bytes. */
  chunk: Buffer<ArrayBuffer>;
}

export type BinaryMessageDecodeResult = { ok: true; message: BinaryProcessOutput } | { ok: false; reason: string };

/** True when `bytes` is a binary message (its first byte is the magic), not JSON text in a binary frame. */
export function isBinaryMessage(bytes: Uint8Array): boolean {
  return bytes.byteLength > 0 && bytes[0] === BINARY_MESSAGE_MAGIC;
}

/**
 * Encodes one process output message (one allocation, one copy of `chunk`); undefined when the
 * processId does not fit (longer than 255 UTF-8 bytes): the caller then sends the JSON notification.
 */
export function encodeBinaryProcessOutput(processId: string, seq: number, stream: OutputStream, chunk: Uint8Array): Buffer | undefined {
  const idLength = Buffer.byteLength(processId, 'utf8');
  if (idLength === 0 || idLength > MAX_BINARY_PROCESS_ID_BYTES || !Number.isSafeInteger(seq) || seq < 0) return undefined;
  const message = Buffer.allocUnsafe(BINARY_OUTPUT_HEADER_BYTES + idLength + chunk.byteLength);
  message[0] = BINARY_MESSAGE_MAGIC;
  message[1] = BINARY_MESSAGE_KIND.processOutput;
  message[2] = STREAM_CODES[stream];
  message[3] = idLength;
  message.writeUInt32BE(Math.floor(seq / TWO_POW_32), 4);
  message.writeUInt32BE(seq % TWO_POW_32, 8);
  message.write(processId, BINARY_OUTPUT_HEADER_BYTES, idLength, 'utf8');
  message.set(chunk, BINARY_OUTPUT_HEADER_BYTES + idLength);
  return message;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes one binary message; never throws. `chunk` is a view of `bytes`. */
export function decodeBinaryMessage(bytes: Uint8Array): BinaryMessageDecodeResult {
  if (bytes.byteLength < BINARY_OUTPUT_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  if (bytes[0] !== BINARY_MESSAGE_MAGIC) return { ok: false, reason: 'bad-magic' };
  if (bytes[1] !== BINARY_MESSAGE_KIND.processOutput) return { ok: false, reason: 'unknown-kind' };
  const stream = STREAMS[bytes[2]!];
  if (stream === undefined) return { ok: false, reason: 'unknown-stream' };
  const idLength = bytes[3]!;
  if (idLength === 0) return { ok: false, reason: 'empty-process-id' };
  if (bytes.byteLength < BINARY_OUTPUT_HEADER_BYTES + idLength) return { ok: false, reason: 'truncated' };
  const view = Buffer.from(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
  const high = view.readUInt32BE(4);
  if (high > 0x1f_ffff) return { ok: false, reason: 'seq-out-of-range' };
  const seq = high * TWO_POW_32 + view.readUInt32BE(8);
  let processId: string;
  try {
    processId = utf8.decode(view.subarray(BINARY_OUTPUT_HEADER_BYTES, BINARY_OUTPUT_HEADER_BYTES + idLength));
  } catch {
    return { ok: false, reason: 'process-id-not-utf8' };
  }
  return { ok: true, message: { processId, seq, stream, chunk: view.subarray(BINARY_OUTPUT_HEADER_BYTES + idLength) } };
}
