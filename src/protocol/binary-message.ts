/**
 * The binary messages (execrelay extensions `binaryOutput` and `binaryFileBlocks`): raw bytes where
 * the JSON wire carries base64 inside JSON. `binaryOutput`: `process/output` (agent → client).
 * `binaryFileBlocks`: the `fs/writeBlock` request (client → agent, answered by the usual JSON
 * response) and the `fs/readBlock` result (agent → client, the answer to a JSON request). Both are
 * offered by the agent in its `initialize` result, only on transports that carry binary messages,
 * and used only after the client took them up in `initialized {binaryOutput: true,
 * binaryFileBlocks: true}` (`InitializedParams`, `src/protocol/session.ts`); a codex peer never
 * offers nor takes them up, so it never sees one and gets exactly the JSON wire. They travel as
 * binary messages of the transport (a WebSocket binary frame; a binary frame of the Noise channel's
 * plaintext framing), never on stdio.
 *
 * Wire layout. All integers are unsigned big-endian; every u64 is ≤ 2^53 - 1. This is the single
 * definition. Byte 0 is {@link BINARY_MESSAGE_MAGIC} (0xB1: never the first byte of UTF-8 text, so
 * never JSON), byte 1 the kind ({@link BINARY_MESSAGE_KIND}).
 *
 * Kind 1, process output (`binaryOutput`; the `process/output` notification):
 *
 * | offset | size | field      | meaning                                                  |
 * |-------:|-----:|------------|----------------------------------------------------------|
 * |      2 |    1 | stream     | 0 stdout, 1 stderr, 2 pty                                |
 * |      3 |    1 | idLength   | UTF-8 length of processId, 1..255                        |
 * |      4 |    8 | seq        | u64 (the notification's `seq`)                           |
 * |     12 |    … | processId  | idLength bytes of UTF-8                                  |
 * |      … |    … | chunk      | the output bytes, the rest of the message (may be empty) |
 *
 * Kind 2, `fs/writeBlock` request (`binaryFileBlocks`; client → agent):
 *
 * | offset | size | field      | meaning                                                  |
 * |-------:|-----:|------------|----------------------------------------------------------|
 * |      2 |    1 | idLength   | UTF-8 length of handleId, 1..255                         |
 * |      3 |    8 | requestId  | u64: the JSON-RPC id its JSON response answers           |
 * |     11 |    8 | offset     | u64: where in the file the chunk goes                    |
 * |     19 |    … | handleId   | idLength bytes of UTF-8                                  |
 * |      … |    … | chunk      | the bytes to write, the rest of the message              |
 *
 * Kind 3, `fs/readBlock` result (`binaryFileBlocks`; agent → client, instead of the JSON response):
 *
 * | offset | size | field      | meaning                                                  |
 * |-------:|-----:|------------|----------------------------------------------------------|
 * |      2 |    1 | eof        | 0 or 1 (the result's `eof`)                              |
 * |      3 |    8 | requestId  | u64: the id of the `fs/readBlock` request it answers     |
 * |     11 |    … | chunk      | the bytes read, the rest of the message (≤ 1 MiB)        |
 *
 * The decoder never throws: a short message, an unknown kind, stream or eof value, an empty or
 * invalid id, a u64 above 2^53 - 1 or a read result over `FS_LIMITS.maxReadBlockBytes` is `{ok:
 * false, reason}` (with the `requestId` once it was read). The message as a whole is bounded by the
 * transport's message cap (`DEFAULT_MAX_MESSAGE_BYTES`), checked by the JSON-RPC connection.
 */
import { FS_LIMITS } from './fs-limits.js';
import type { OutputStream } from './process.js';

/** First byte of every binary message: a UTF-8 continuation byte, so no JSON text starts with it. */
export const BINARY_MESSAGE_MAGIC = 0xb1;
export const BINARY_MESSAGE_KIND = { processOutput: 1, fsWriteBlock: 2, fsReadBlockResult: 3 } as const;
/** Bytes before the processId of a process output message. */
export const BINARY_OUTPUT_HEADER_BYTES = 12;
/** Bytes before the handleId of an `fs/writeBlock` message. */
export const BINARY_WRITE_BLOCK_HEADER_BYTES = 19;
/** Bytes before the chunk of an `fs/readBlock` result. */
export const BINARY_READ_BLOCK_HEADER_BYTES = 11;
/** Longest processId a binary output message can carry (an agent falls back to JSON past it). */
export const MAX_BINARY_PROCESS_ID_BYTES = 255;
/** Longest handleId an `fs/writeBlock` message can carry (a client falls back to JSON past it). */
export const MAX_BINARY_HANDLE_ID_BYTES = 255;

const STREAM_CODES: Record<OutputStream, number> = { stdout: 0, stderr: 1, pty: 2 };
const STREAMS: readonly OutputStream[] = ['stdout', 'stderr', 'pty'];
const TWO_POW_32 = 0x1_0000_0000;
/** The high 32 bits of 2^53 - 1. */
const MAX_SAFE_HIGH = 0x1f_ffff;

export interface BinaryProcessOutput {
  kind: 'processOutput';
  processId: string;
  seq: number;
  stream: OutputStream;
  /** A view of the decoded message's bytes. */
  chunk: Buffer<ArrayBuffer>;
}

export interface BinaryWriteBlockRequest {
  kind: 'fsWriteBlock';
  requestId: number;
  handleId: string;
  offset: number;
  /** A view of the decoded message's bytes. */
  chunk: Buffer<ArrayBuffer>;
}

export interface BinaryReadBlockResult {
  kind: 'fsReadBlockResult';
  requestId: number;
  eof: boolean;
  /** A view of the decoded message's bytes. */
  chunk: Buffer<ArrayBuffer>;
}

export type BinaryMessage = BinaryProcessOutput | BinaryWriteBlockRequest | BinaryReadBlockResult;

export type BinaryMessageDecodeResult =
  | { ok: true; message: BinaryMessage }
  /** `requestId`: the id of a request or result whose header was read before the fault. */
  | { ok: false; reason: string; requestId?: number };

/** True when `bytes` is a binary message (its first byte is the magic), not JSON text in a binary frame. */
export function isBinaryMessage(bytes: Uint8Array): boolean {
  return bytes.byteLength > 0 && bytes[0] === BINARY_MESSAGE_MAGIC;
}

function isU53(value: number): boolean {
  return Number.isSafeInteger(value) && value >= 0;
}

function writeU53(message: Buffer, value: number, at: number): void {
  message.writeUInt32BE(Math.floor(value / TWO_POW_32), at);
  message.writeUInt32BE(value % TWO_POW_32, at + 4);
}

/** The u64 at `at`, or undefined above 2^53 - 1. */
function readU53(view: Buffer, at: number): number | undefined {
  const high = view.readUInt32BE(at);
  return high > MAX_SAFE_HIGH ? undefined : high * TWO_POW_32 + view.readUInt32BE(at + 4);
}

/**
 * Encodes one process output message (one allocation, one copy of `chunk`); undefined when the
 * processId does not fit (longer than 255 UTF-8 bytes): the caller then sends the JSON notification.
 */
export function encodeBinaryProcessOutput(processId: string, seq: number, stream: OutputStream, chunk: Uint8Array): Buffer | undefined {
  const idLength = Buffer.byteLength(processId, 'utf8');
  if (idLength === 0 || idLength > MAX_BINARY_PROCESS_ID_BYTES || !isU53(seq)) return undefined;
  const message = Buffer.allocUnsafe(BINARY_OUTPUT_HEADER_BYTES + idLength + chunk.byteLength);
  message[0] = BINARY_MESSAGE_MAGIC;
  message[1] = BINARY_MESSAGE_KIND.processOutput;
  message[2] = STREAM_CODES[stream];
  message[3] = idLength;
  writeU53(message, seq, 4);
  message.write(processId, BINARY_OUTPUT_HEADER_BYTES, idLength, 'utf8');
  message.set(chunk, BINARY_OUTPUT_HEADER_BYTES + idLength);
  return message;
}

/**
 * Encodes one `fs/writeBlock` request (one allocation, one copy of `chunk`); undefined when it cannot
 * carry it (a handleId empty or over 255 UTF-8 bytes, an id or offset that is no integer in
 * 0..2^53 - 1): the caller then sends the JSON request.
 */
export function encodeBinaryWriteBlock(requestId: number, handleId: string, offset: number, chunk: Uint8Array): Buffer | undefined {
  const idLength = Buffer.byteLength(handleId, 'utf8');
  if (idLength === 0 || idLength > MAX_BINARY_HANDLE_ID_BYTES || !isU53(requestId) || !isU53(offset)) return undefined;
  const message = Buffer.allocUnsafe(BINARY_WRITE_BLOCK_HEADER_BYTES + idLength + chunk.byteLength);
  message[0] = BINARY_MESSAGE_MAGIC;
  message[1] = BINARY_MESSAGE_KIND.fsWriteBlock;
  message[2] = idLength;
  writeU53(message, requestId, 3);
  writeU53(message, offset, 11);
  message.write(handleId, BINARY_WRITE_BLOCK_HEADER_BYTES, idLength, 'utf8');
  message.set(chunk, BINARY_WRITE_BLOCK_HEADER_BYTES + idLength);
  return message;
}

/** Encodes one `fs/readBlock` result; undefined when `requestId` is no integer in 0..2^53 - 1 (the caller answers in JSON). */
export function encodeBinaryReadBlockResult(requestId: number, eof: boolean, chunk: Uint8Array): Buffer | undefined {
  if (!isU53(requestId)) return undefined;
  const message = Buffer.allocUnsafe(BINARY_READ_BLOCK_HEADER_BYTES + chunk.byteLength);
  message[0] = BINARY_MESSAGE_MAGIC;
  message[1] = BINARY_MESSAGE_KIND.fsReadBlockResult;
  message[2] = eof ? 1 : 0;
  writeU53(message, requestId, 3);
  message.set(chunk, BINARY_READ_BLOCK_HEADER_BYTES);
  return message;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** `view[from, from + length)` as strict UTF-8, or undefined. */
function decodeId(view: Buffer, from: number, length: number): string | undefined {
  try {
    return utf8.decode(view.subarray(from, from + length));
  } catch {
    return undefined;
  }
}

/** Decodes one binary message; never throws. `chunk` is a view of `bytes`. */
export function decodeBinaryMessage(bytes: Uint8Array): BinaryMessageDecodeResult {
  if (bytes.byteLength < 2) return { ok: false, reason: 'truncated' };
  if (bytes[0] !== BINARY_MESSAGE_MAGIC) return { ok: false, reason: 'bad-magic' };
  const view = Buffer.from(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength);
  switch (bytes[1]) {
    case BINARY_MESSAGE_KIND.processOutput:
      return decodeProcessOutput(view);
    case BINARY_MESSAGE_KIND.fsWriteBlock:
      return decodeWriteBlock(view);
    case BINARY_MESSAGE_KIND.fsReadBlockResult:
      return decodeReadBlockResult(view);
    default:
      return { ok: false, reason: 'unknown-kind' };
  }
}

function decodeProcessOutput(view: Buffer<ArrayBuffer>): BinaryMessageDecodeResult {
  if (view.byteLength < BINARY_OUTPUT_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  const stream = STREAMS[view[2]!];
  if (stream === undefined) return { ok: false, reason: 'unknown-stream' };
  const idLength = view[3]!;
  if (idLength === 0) return { ok: false, reason: 'empty-process-id' };
  if (view.byteLength < BINARY_OUTPUT_HEADER_BYTES + idLength) return { ok: false, reason: 'truncated' };
  const seq = readU53(view, 4);
  if (seq === undefined) return { ok: false, reason: 'seq-out-of-range' };
  const processId = decodeId(view, BINARY_OUTPUT_HEADER_BYTES, idLength);
  if (processId === undefined) return { ok: false, reason: 'process-id-not-utf8' };
  return { ok: true, message: { kind: 'processOutput', processId, seq, stream, chunk: view.subarray(BINARY_OUTPUT_HEADER_BYTES + idLength) } };
}

function decodeWriteBlock(view: Buffer<ArrayBuffer>): BinaryMessageDecodeResult {
  if (view.byteLength < BINARY_WRITE_BLOCK_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  const requestId = readU53(view, 3);
  if (requestId === undefined) return { ok: false, reason: 'request-id-out-of-range' };
  const idLength = view[2]!;
  if (idLength === 0) return { ok: false, reason: 'empty-handle-id', requestId };
  if (view.byteLength < BINARY_WRITE_BLOCK_HEADER_BYTES + idLength) return { ok: false, reason: 'truncated', requestId };
  const offset = readU53(view, 11);
  if (offset === undefined) return { ok: false, reason: 'offset-out-of-range', requestId };
  const handleId = decodeId(view, BINARY_WRITE_BLOCK_HEADER_BYTES, idLength);
  if (handleId === undefined) return { ok: false, reason: 'handle-id-not-utf8', requestId };
  return { ok: true, message: { kind: 'fsWriteBlock', requestId, handleId, offset, chunk: view.subarray(BINARY_WRITE_BLOCK_HEADER_BYTES + idLength) } };
}

function decodeReadBlockResult(view: Buffer<ArrayBuffer>): BinaryMessageDecodeResult {
  if (view.byteLength < BINARY_READ_BLOCK_HEADER_BYTES) return { ok: false, reason: 'truncated' };
  const requestId = readU53(view, 3);
  if (requestId === undefined) return { ok: false, reason: 'request-id-out-of-range' };
  const eofCode = view[2]!;
  if (eofCode > 1) return { ok: false, reason: 'bad-eof', requestId };
  if (view.byteLength - BINARY_READ_BLOCK_HEADER_BYTES > FS_LIMITS.maxReadBlockBytes) return { ok: false, reason: 'chunk-too-long', requestId };
  return { ok: true, message: { kind: 'fsReadBlockResult', requestId, eof: eofCode === 1, chunk: view.subarray(BINARY_READ_BLOCK_HEADER_BYTES) } };
}
