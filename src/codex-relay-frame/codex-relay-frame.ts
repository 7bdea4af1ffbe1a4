/**
 * The codex relay frame: protobuf `codex.exec_server.relay.v1.RelayMessageFrame` as codex
 * exec-server 0.169.0 speaks it, one frame per binary WebSocket message. This table is the single
 * definition of the format; the encoder and decoder follow it.
 *
 * | field      | no. | type                    | rule (what 0.169.0 does with a frame breaking it: dropped) |
 * |------------|----:|-------------------------|-------------------------------------------------------------|
 * | version    |   1 | uint32                  | must be {@link CODEX_RELAY_FRAME_VERSION} (1)               |
 * | stream_id  |   2 | string                  | non-empty UTF-8 (ours: ≤ {@link MAX_CODEX_STREAM_ID_BYTES}) |
 * | ack        |   3 | uint32                  | never set by 0.169.0, ignored by it                         |
 * | ack_bits   |   4 | uint32                  | same                                                        |
 * | data       |   5 | RelayData (oneof body)  | see below                                                   |
 * | ack_frame  |   6 | RelayAck {}             | accepted and ignored by 0.169.0                             |
 * | resume     |   7 | RelayResume             | `next_seq` = 1 uint32; accepted and ignored by 0.169.0      |
 * | reset      |   8 | RelayReset              | `reason` = 1 string, non-empty, ≤ {@link MAX_CODEX_RESET_REASON_BYTES} bytes |
 * | heartbeat  |   9 | RelayHeartbeat {}       | accepted and ignored by 0.169.0                             |
 * | handshake  |  10 | RelayHandshake          | `payload` = 1 bytes, non-empty (a Noise handshake message)  |
 *
 * `RelayData`: `seq` = 1 uint32, `segment_index` = 2 uint32 (must be 0), `segment_count` = 3 uint32
 * (must be 1), `payload` = 4 bytes (non-empty: one Noise transport record). So the API's data body
 * has only `seq` and `payload`; the encoder always writes segment_count 1.
 *
 * Encoding is prost's: fields in number order, proto3 defaults (0, empty) omitted, the body's
 * message always present (an empty body message is its key and a zero length). Decoding follows
 * protobuf: unknown fields are skipped, a later scalar wins, a later occurrence of the same body
 * merges into it and of another body replaces it; a known field with the wrong wire type, a
 * truncated field or invalid UTF-8 in a string is malformed. Frames above
 * {@link MAX_CODEX_RELAY_FRAME_BYTES} (the WebSocket message limit) are refused unread.
 *
 * {@link decodeCodexRelayFrame} never throws: it returns a result, so a stranger's bytes can only
 * produce a reason. Decoded payloads are views of the input.
 */
import { ProtobufReader, ProtobufWireError, ProtobufWriter, WIRE_TYPE } from './protobuf-wire.js';

/** The only frame version. */
export const CODEX_RELAY_FRAME_VERSION = 1;
/** Largest frame (codex's WebSocket message limit, 256 KiB). */
export const MAX_CODEX_RELAY_FRAME_BYTES = 256 * 1024;
/** Longest reset reason, in UTF-8 bytes. */
export const MAX_CODEX_RESET_REASON_BYTES = 256;
/**
 * Longest stream id we accept, in UTF-8 bytes. 0.169.0 has no cap (a 300-byte id was accepted);
 * harnesses use a UUID (36 bytes), and a relay keys its routes by it, so ours is bounded.
 */
export const MAX_CODEX_STREAM_ID_BYTES = 1024;

/** Field numbers of `RelayMessageFrame`. */
export const FRAME_FIELD = {
  version: 1,
  streamId: 2,
  ack: 3,
  ackBits: 4,
  data: 5,
  ackFrame: 6,
  resume: 7,
  reset: 8,
  heartbeat: 9,
  handshake: 10,
} as const;

/** Field numbers of `RelayData`. */
export const DATA_FIELD = { seq: 1, segmentIndex: 2, segmentCount: 3, payload: 4 } as const;
/** The one field of `RelayResume` (`next_seq`), `RelayReset` (`reason`) and `RelayHandshake` (`payload`). */
export const SINGLE_FIELD = 1;

/** One Noise transport record, in seq order per stream and direction (from 0). */
export interface CodexDataBody {
  readonly type: 'data';
  readonly seq: number;
  readonly payload: Uint8Array;
}
export interface CodexAckBody {
  readonly type: 'ack';
}
export interface CodexResumeBody {
  readonly type: 'resume';
  readonly nextSeq: number;
}
export interface CodexResetBody {
  readonly type: 'reset';
  readonly reason: string;
}
export interface CodexHeartbeatBody {
  readonly type: 'heartbeat';
}
/** A Noise handshake message. */
export interface CodexHandshakeBody {
  readonly type: 'handshake';
  readonly payload: Uint8Array;
}
export type CodexRelayBody = CodexDataBody | CodexAckBody | CodexResumeBody | CodexResetBody | CodexHeartbeatBody | CodexHandshakeBody;

/** A frame. `ack` and `ackBits` are 0 unless a peer set them (0.169.0 never does). */
export interface CodexRelayFrame {
  readonly streamId: string;
  readonly ack: number;
  readonly ackBits: number;
  readonly body: CodexRelayBody;
}

/** What a frame to encode gives; `ack` and `ackBits` default to 0 (omitted). */
export type CodexRelayFrameInit = Omit<CodexRelayFrame, 'ack' | 'ackBits'> & { readonly ack?: number; readonly ackBits?: number };

/** Why a frame was refused: a fixed set (usable as a telemetry label). */
export const CODEX_RELAY_FRAME_FAULTS = [
  'too-large',
  'malformed',
  'bad-version',
  'missing-stream-id',
  'stream-id-too-long',
  'missing-body',
  'bad-segment',
  'empty-payload',
  'missing-reset-reason',
  'reset-reason-too-long',
] as const;
export type CodexRelayFrameFault = (typeof CODEX_RELAY_FRAME_FAULTS)[number];

export type CodexRelayFrameDecodeResult =
  | { readonly ok: true; readonly frame: CodexRelayFrame }
  | { readonly ok: false; readonly fault: CodexRelayFrameFault; readonly message: string };

/** A frame our code tried to encode breaks the table above (a bug of the caller, never a peer's input). */
export class CodexRelayFrameEncodeError extends Error {
  override readonly name = 'CodexRelayFrameEncodeError';
}

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Encodes a frame as prost does. @throws CodexRelayFrameEncodeError when `init` breaks a rule. */
export function encodeCodexRelayFrame(init: CodexRelayFrameInit): Uint8Array {
  const streamId = utf8.encode(init.streamId);
  if (streamId.length === 0) throw new CodexRelayFrameEncodeError('stream id must not be empty');
  if (streamId.length > MAX_CODEX_STREAM_ID_BYTES) throw new CodexRelayFrameEncodeError(`stream id exceeds ${MAX_CODEX_STREAM_ID_BYTES} bytes`);
  const frame = new ProtobufWriter()
    .uint32(FRAME_FIELD.version, CODEX_RELAY_FRAME_VERSION)
    .lengthDelimited(FRAME_FIELD.streamId, streamId)
    .uint32(FRAME_FIELD.ack, requireUint32(init.ack ?? 0, 'ack'))
    .uint32(FRAME_FIELD.ackBits, requireUint32(init.ackBits ?? 0, 'ackBits'));
  const body = init.body;
  switch (body.type) {
    case 'data': {
      if (body.payload.length === 0) throw new CodexRelayFrameEncodeError('data payload must not be empty');
      const data = new ProtobufWriter()
        .uint32(DATA_FIELD.seq, requireUint32(body.seq, 'seq'))
        .uint32(DATA_FIELD.segmentCount, 1)
        .lengthDelimited(DATA_FIELD.payload, body.payload);
      frame.lengthDelimited(FRAME_FIELD.data, data.finish());
      break;
    }
    case 'ack':
      frame.lengthDelimited(FRAME_FIELD.ackFrame, new Uint8Array(0));
      break;
    case 'resume':
      frame.lengthDelimited(FRAME_FIELD.resume, new ProtobufWriter().uint32(SINGLE_FIELD, requireUint32(body.nextSeq, 'nextSeq')).finish());
      break;
    case 'reset': {
      const reason = utf8.encode(body.reason);
      if (reason.length === 0) throw new CodexRelayFrameEncodeError('reset reason must not be empty');
      if (reason.length > MAX_CODEX_RESET_REASON_BYTES) throw new CodexRelayFrameEncodeError(`reset reason exceeds ${MAX_CODEX_RESET_REASON_BYTES} bytes`);
      frame.lengthDelimited(FRAME_FIELD.reset, new ProtobufWriter().lengthDelimited(SINGLE_FIELD, reason).finish());
      break;
    }
    case 'heartbeat':
      frame.lengthDelimited(FRAME_FIELD.heartbeat, new Uint8Array(0));
      break;
    case 'handshake':
      if (body.payload.length === 0) throw new CodexRelayFrameEncodeError('handshake payload must not be empty');
      frame.lengthDelimited(FRAME_FIELD.handshake, new ProtobufWriter().lengthDelimited(SINGLE_FIELD, body.payload).finish());
      break;
  }
  if (frame.length > MAX_CODEX_RELAY_FRAME_BYTES) throw new CodexRelayFrameEncodeError(`frame exceeds ${MAX_CODEX_RELAY_FRAME_BYTES} bytes`);
  return frame.finish();
}

/** Raw body fields while decoding (protobuf merges repeated occurrences of the same body). */
type RawBody =
  | { type: 'data'; seq: number; segmentIndex: number; segmentCount: number; payload: Uint8Array }
  | { type: 'ack' }
  | { type: 'resume'; nextSeq: number }
  | { type: 'reset'; reason: Uint8Array }
  | { type: 'heartbeat' }
  | { type: 'handshake'; payload: Uint8Array };

const EMPTY: Uint8Array = new Uint8Array(0);

/** Decodes and validates one frame. Never throws. */
export function decodeCodexRelayFrame(bytes: Uint8Array): CodexRelayFrameDecodeResult {
  if (bytes.length > MAX_CODEX_RELAY_FRAME_BYTES) return refuse('too-large', `frame of ${bytes.length} bytes exceeds ${MAX_CODEX_RELAY_FRAME_BYTES}`);
  let version = 0;
  let streamIdBytes = EMPTY;
  let ack = 0;
  let ackBits = 0;
  let body: RawBody | undefined;
  try {
    const reader = new ProtobufReader(bytes);
    while (!reader.done) {
      const { field, wireType } = reader.key();
      switch (field) {
        case FRAME_FIELD.version:
          version = expectVarint(reader, wireType);
          break;
        case FRAME_FIELD.streamId:
          streamIdBytes = expectLengthDelimited(reader, wireType);
          break;
        case FRAME_FIELD.ack:
          ack = expectVarint(reader, wireType);
          break;
        case FRAME_FIELD.ackBits:
          ackBits = expectVarint(reader, wireType);
          break;
        case FRAME_FIELD.data:
          body = decodeData(expectLengthDelimited(reader, wireType), body?.type === 'data' ? body : undefined);
          break;
        case FRAME_FIELD.ackFrame:
          skipAll(expectLengthDelimited(reader, wireType));
          body = { type: 'ack' };
          break;
        case FRAME_FIELD.resume: {
          const nextSeq = decodeSingle(expectLengthDelimited(reader, wireType), WIRE_TYPE.varint);
          body = { type: 'resume', nextSeq: typeof nextSeq === 'number' ? nextSeq : body?.type === 'resume' ? body.nextSeq : 0 };
          break;
        }
        case FRAME_FIELD.reset: {
          const reason = decodeSingle(expectLengthDelimited(reader, wireType), WIRE_TYPE.lengthDelimited);
          body = { type: 'reset', reason: reason instanceof Uint8Array ? reason : body?.type === 'reset' ? body.reason : EMPTY };
          break;
        }
        case FRAME_FIELD.heartbeat:
          skipAll(expectLengthDelimited(reader, wireType));
          body = { type: 'heartbeat' };
          break;
        case FRAME_FIELD.handshake: {
          const payload = decodeSingle(expectLengthDelimited(reader, wireType), WIRE_TYPE.lengthDelimited);
          body = { type: 'handshake', payload: payload instanceof Uint8Array ? payload : body?.type === 'handshake' ? body.payload : EMPTY };
          break;
        }
        default:
          reader.skip(wireType);
      }
    }
  } catch (error) {
    if (error instanceof ProtobufWireError) return refuse('malformed', `not a RelayMessageFrame: ${error.message}`);
    return refuse('malformed', 'not a RelayMessageFrame');
  }
  return validate(version, streamIdBytes, ack, ackBits, body);
}

function validate(version: number, streamIdBytes: Uint8Array, ack: number, ackBits: number, body: RawBody | undefined): CodexRelayFrameDecodeResult {
  if (version !== CODEX_RELAY_FRAME_VERSION) return refuse('bad-version', `version ${version} (expected ${CODEX_RELAY_FRAME_VERSION})`);
  if (streamIdBytes.length === 0) return refuse('missing-stream-id', 'stream_id is empty');
  if (streamIdBytes.length > MAX_CODEX_STREAM_ID_BYTES) return refuse('stream-id-too-long', `stream_id exceeds ${MAX_CODEX_STREAM_ID_BYTES} bytes`);
  const streamId = decodeUtf8(streamIdBytes);
  if (streamId === undefined) return refuse('malformed', 'stream_id is not UTF-8');
  if (body === undefined) return refuse('missing-body', 'no known body');
  let decoded: CodexRelayBody;
  switch (body.type) {
    case 'data':
      if (body.segmentIndex !== 0 || body.segmentCount !== 1) {
        return refuse('bad-segment', `segment ${body.segmentIndex} of ${body.segmentCount} (only 0 of 1 exists)`);
      }
      if (body.payload.length === 0) return refuse('empty-payload', 'data payload is empty');
      decoded = { type: 'data', seq: body.seq, payload: body.payload };
      break;
    case 'reset': {
      if (body.reason.length === 0) return refuse('missing-reset-reason', 'reset reason is empty');
      if (body.reason.length > MAX_CODEX_RESET_REASON_BYTES) return refuse('reset-reason-too-long', `reset reason exceeds ${MAX_CODEX_RESET_REASON_BYTES} bytes`);
      const reason = decodeUtf8(body.reason);
      if (reason === undefined) return refuse('malformed', 'reset reason is not UTF-8');
      decoded = { type: 'reset', reason };
      break;
    }
    case 'handshake':
      if (body.payload.length === 0) return refuse('empty-payload', 'handshake payload is empty');
      decoded = body;
      break;
    default:
      decoded = body;
  }
  return { ok: true, frame: { streamId, ack, ackBits, body: decoded } };
}

function decodeData(bytes: Uint8Array, previous: Extract<RawBody, { type: 'data' }> | undefined): RawBody {
  const data = previous ?? { type: 'data' as const, seq: 0, segmentIndex: 0, segmentCount: 0, payload: EMPTY };
  const reader = new ProtobufReader(bytes);
  while (!reader.done) {
    const { field, wireType } = reader.key();
    switch (field) {
      case DATA_FIELD.seq:
        data.seq = expectVarint(reader, wireType);
        break;
      case DATA_FIELD.segmentIndex:
        data.segmentIndex = expectVarint(reader, wireType);
        break;
      case DATA_FIELD.segmentCount:
        data.segmentCount = expectVarint(reader, wireType);
        break;
      case DATA_FIELD.payload:
        data.payload = expectLengthDelimited(reader, wireType);
        break;
      default:
        reader.skip(wireType);
    }
  }
  return data;
}

/** The last value of field 1 of a one-field message, or undefined when absent. */
function decodeSingle(bytes: Uint8Array, wireType: number): number | Uint8Array | undefined {
  const reader = new ProtobufReader(bytes);
  let value: number | Uint8Array | undefined;
  while (!reader.done) {
    const key = reader.key();
    if (key.field !== SINGLE_FIELD) {
      reader.skip(key.wireType);
      continue;
    }
    value = wireType === WIRE_TYPE.varint ? expectVarint(reader, key.wireType) : expectLengthDelimited(reader, key.wireType);
  }
  return value;
}

function skipAll(bytes: Uint8Array): void {
  const reader = new ProtobufReader(bytes);
  while (!reader.done) reader.skip(reader.key().wireType);
}

function expectVarint(reader: ProtobufReader, wireType: number): number {
  if (wireType !== WIRE_TYPE.varint) throw new ProtobufWireError(`uint32 field with wire type ${wireType}`);
  return reader.uint32();
}

function expectLengthDelimited(reader: ProtobufReader, wireType: number): Uint8Array {
  if (wireType !== WIRE_TYPE.lengthDelimited) throw new ProtobufWireError(`length-delimited field with wire type ${wireType}`);
  return reader.lengthDelimited();
}

function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}

function requireUint32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new CodexRelayFrameEncodeError(`${what} must be a uint32, got ${value}`);
  return value;
}

function refuse(fault: CodexRelayFrameFault, message: string): CodexRelayFrameDecodeResult {
  return { ok: false, fault, message };
}
