/**
 * Relay frame codec (layer 2): the binary frame that endpoints exchange through the rendezvous
 * relay. The relay only calls {@link peekHeader} (version, stream id, body tag) to route a frame;
 * the endpoints' reliable streams encode and decode whole frames.
 *
 * Wire layout. All integers are unsigned big-endian. This table is the single definition of the
 * format; the offsets below and the body parsers follow it.
 *
 * | offset | size | field       | meaning                                                           |
 * |-------:|-----:|-------------|-------------------------------------------------------------------|
 * |      0 |    1 | version     | u8, {@link RELAY_FRAME_VERSION} (1)                               |
 * |      1 |   16 | streamId    | UUID, 16 raw bytes (RFC 4122 byte order)                          |
 * |     17 |    1 | tag         | u8 body tag, see {@link FRAME_TAG}                                |
 * |     18 |    4 | ackNext     | u32: (highest contiguous peer seq received) + 1; 0 = none yet     |
 * |     22 |    4 | ackBits     | u32: bit i (LSB = bit 0) acknowledges peer seq ack + 1 + i        |
 * |     26 |    … | body        | depends on tag:                                                   |
 *
 * | tag | body      | body layout                                                                |
 * |----:|-----------|----------------------------------------------------------------------------|
 * |   1 | open      | u16 payloadLength (≤ 1,024), payload                                       |
 * |   2 | data      | u32 seq, u16 segmentIndex, u16 segmentCount, u32 payloadLength (≤ 65,536), payload |
 * |   3 | ack       | (empty)                                                                    |
 * |   4 | resume    | u32 nextSeq (the sender's next seq)                                        |
 * |   5 | reset     | u16 reasonLength (≤ 256), UTF-8 reason                                     |
 * |   6 | heartbeat | (empty)                                                                    |
 * |   7 | close     | (empty)                                                                    |
 *
 * A frame is exactly header + body: a missing byte is `truncated`, an extra byte `trailing-bytes`.
 * Tag 0 is never valid, so a zero-filled buffer is refused. In the API `ack` is a number in
 * [{@link NO_ACK} (-1), {@link MAX_SEQ}]; on the wire it travels as `ack + 1`.
 *
 * `data` invariants checked by the decoder: `segmentCount ≥ 1`, `segmentIndex < segmentCount`,
 * `seq ≥ segmentIndex` (the message starts at `seq - segmentIndex ≥ 0`) and the message's last seq
 * `seq - segmentIndex + segmentCount - 1 ≤ MAX_SEQ`.
 *
 * Allocation: {@link encodeRelayFrame} allocates exactly one buffer per frame and copies the payload
 * into it, except for a `data` payload obtained from {@link allocateDataPayload}: that one already
 * sits behind room for the header, so its first encoding writes the header in front of it and
 * returns a view of that same memory (no copy, no allocation). Decoded payloads are views
 * (`subarray`) of the input, so the caller must not reuse the input buffer while a decoded frame is
 * alive.
 */
import {
  ACK_BITS_WIDTH,
  DATA_BODY_FIXED_BYTES,
  FRAME_HEADER_BYTES,
  MAX_OPEN_PAYLOAD_BYTES,
  MAX_RELAY_FRAME_BYTES,
  MAX_RESET_REASON_BYTES,
  MAX_SEGMENT_COUNT,
  MAX_SEGMENT_PAYLOAD_BYTES,
  MAX_SEQ,
  NO_ACK,
  RELAY_FRAME_VERSION,
} from './limits.js';

/** Body tags on the wire. */
export const FRAME_TAG = {
  open: 1,
  data: 2,
  ack: 3,
  resume: 4,
  reset: 5,
  heartbeat: 6,
  close: 7,
} as const;

/** Name of a frame body type. */
export type RelayFrameType = keyof typeof FRAME_TAG;

const TYPE_BY_TAG: readonly (RelayFrameType | undefined)[] = [
  undefined,
  'open',
  'data',
  'ack',
  'resume',
  'reset',
  'heartbeat',
  'close',
];

// Offsets of the common header (see the table above).
const OFFSET_VERSION = 0;
const OFFSET_STREAM_ID = 1;
const STREAM_ID_BYTES = 16;
const OFFSET_TAG = 17;
const OFFSET_ACK_NEXT = 18;
const OFFSET_ACK_BITS = 22;
/** Bytes {@link peekHeader} needs: version, streamId and tag. */
export const PEEK_HEADER_BYTES = OFFSET_TAG + 1;

/** `open`: starts a stream; the opener may attach a small payload. */
export interface OpenBody {
  readonly type: 'open';
  readonly payload: Uint8Array;
}

/** `data`: one segment of a message. The message starts at seq `seq - segmentIndex`. */
export interface DataBody {
  readonly type: 'data';
  readonly seq: number;
  readonly segmentIndex: number;
  readonly segmentCount: number;
  readonly payload: Uint8Array;
}

/** `ack`: carries only the header's ack state. */
export interface AckBody {
  readonly type: 'ack';
}

/** `resume`: the sender (re)attached or asks for retransmission; `nextSeq` is its next seq. */
export interface ResumeBody {
  readonly type: 'resume';
  readonly nextSeq: number;
}

/** `reset`: the stream is over, both ways, for `reason`. */
export interface ResetBody {
  readonly type: 'reset';
  readonly reason: string;
}

/** `heartbeat`: liveness only. */
export interface HeartbeatBody {
  readonly type: 'heartbeat';
}

/** `close`: graceful end of the sender's direction; it occupies the sender's next seq. */
export interface CloseBody {
  readonly type: 'close';
}

/** Shared immutable bodies for the field-less frame types. */
export const ACK_BODY: AckBody = Object.freeze({ type: 'ack' });
export const HEARTBEAT_BODY: HeartbeatBody = Object.freeze({ type: 'heartbeat' });
export const CLOSE_BODY: CloseBody = Object.freeze({ type: 'close' });

/** Any frame body. */
export type RelayFrameBody = OpenBody | DataBody | AckBody | ResumeBody | ResetBody | HeartbeatBody | CloseBody;

/** A decoded frame. */
export interface RelayFrame {
  readonly version: number;
  /** Canonical lowercase UUID string. */
  readonly streamId: string;
  /** Highest contiguous peer seq received, or {@link NO_ACK}. */
  readonly ack: number;
  /** Bit i acknowledges peer seq `ack + 1 + i`. */
  readonly ackBits: number;
  readonly body: RelayFrameBody;
}

/** What {@link encodeRelayFrame} takes. The version is always {@link RELAY_FRAME_VERSION}. */
export interface RelayFrameInit {
  /** UUID string, or its 16 raw bytes (lets a hot sender parse its id once). */
  readonly streamId: string | Uint8Array;
  readonly ack: number;
  readonly ackBits: number;
  readonly body: RelayFrameBody;
}

/** The routing part of a frame, as read by {@link peekHeader}. */
export interface RelayFrameHeader {
  readonly version: number;
  readonly streamId: string;
  readonly type: RelayFrameType;
}

/** Why a byte sequence is not a valid frame. */
export type RelayFrameErrorCode =
  | 'truncated'
  | 'trailing-bytes'
  | 'frame-too-large'
  | 'unsupported-version'
  | 'unknown-tag'
  | 'segment-count-zero'
  | 'segment-index-out-of-range'
  | 'seq-out-of-range'
  | 'payload-too-large'
  | 'reason-too-long'
  | 'reason-not-utf8';

/** The only error the decoder produces: returned (never thrown) by {@link decodeRelayFrame}. */
export class RelayFrameDecodeError extends Error {
  override readonly name = 'RelayFrameDecodeError';
  constructor(
    readonly code: RelayFrameErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Why a frame could not be encoded: a caller bug (field out of range), thrown by the encoder. */
export type RelayFrameEncodeErrorCode =
  | 'invalid-stream-id'
  | 'invalid-field'
  | 'payload-too-large'
  | 'reason-too-long';

/** Thrown by {@link encodeRelayFrame} and {@link streamIdToBytes} for out-of-range input. */
export class RelayFrameEncodeError extends Error {
  override readonly name = 'RelayFrameEncodeError';
  constructor(
    readonly code: RelayFrameEncodeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Result of {@link decodeRelayFrame}. */
export type RelayFrameDecodeResult =
  | { readonly ok: true; readonly frame: RelayFrame }
  | { readonly ok: false; readonly error: RelayFrameDecodeError };

/** Result of {@link peekHeader}. */
export type RelayFramePeekResult =
  | { readonly ok: true; readonly header: RelayFrameHeader }
  | { readonly ok: false; readonly error: RelayFrameDecodeError };

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// ---------------------------------------------------------------------------------------------
// Stream ids

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
const STREAM_ID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True if `value` is a UUID string (any case) in the 8-4-4-4-12 form. */
export function isStreamId(value: string): boolean {
  return STREAM_ID_PATTERN.test(value);
}

/** The 16 raw bytes of a UUID string. Throws {@link RelayFrameEncodeError} if it is not one. */
export function streamIdToBytes(streamId: string): Uint8Array {
  if (!isStreamId(streamId)) {
    throw new RelayFrameEncodeError('invalid-stream-id', `not a UUID: ${JSON.stringify(streamId.slice(0, 64))}`);
  }
  const hex = streamId.replaceAll('-', '');
  const bytes = new Uint8Array(STREAM_ID_BYTES);
  for (let i = 0; i < STREAM_ID_BYTES; i++) bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** The last id {@link streamIdFromBytes} built, and its bytes: frames come in runs of one stream. */
let lastIdString = '';
const lastIdBytes = new Uint8Array(STREAM_ID_BYTES);
let lastIdValid = false;

/** The canonical lowercase UUID string of 16 bytes starting at `offset`. */
export function streamIdFromBytes(bytes: Uint8Array, offset = 0): string {
  if (lastIdValid) {
    let same = true;
    for (let i = 0; i < STREAM_ID_BYTES; i++) {
      if (bytes[offset + i] !== lastIdBytes[i]) {
        same = false;
        break;
      }
    }
    if (same) return lastIdString;
  }
  let out = '';
  for (let i = 0; i < STREAM_ID_BYTES; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += '-';
    out += HEX[bytes[offset + i]!]!;
  }
  for (let i = 0; i < STREAM_ID_BYTES; i++) lastIdBytes[i] = bytes[offset + i]!;
  lastIdString = out;
  lastIdValid = true;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reset reasons

/**
 * `reason` cut to at most {@link MAX_RESET_REASON_BYTES} UTF-8 bytes, on a code point boundary, so
 * that it can always be encoded in a `reset` frame.
 */
export function clampResetReason(reason: string): string {
  if (reason.length * 3 <= MAX_RESET_REASON_BYTES) return reason;
  const bytes = utf8Encoder.encode(reason);
  if (bytes.length <= MAX_RESET_REASON_BYTES) return reason;
  let end = MAX_RESET_REASON_BYTES;
  // Back up over continuation bytes (10xxxxxx) to the start of the cut code point.
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return utf8Decoder.decode(bytes.subarray(0, end));
}

// ---------------------------------------------------------------------------------------------
// Zero-copy data payloads

/** Bytes of a `data` frame in front of its payload (common header + data body fields). */
export const DATA_PAYLOAD_OFFSET = FRAME_HEADER_BYTES + DATA_BODY_FIXED_BYTES;

/** Payloads from {@link allocateDataPayload} whose header room is still unused, with their frame buffer. */
const framesWithRoom = new WeakMap<Uint8Array, Uint8Array>();

/**
 * A `length`-byte payload buffer (contents uninitialized) laid out behind room for a `data` frame
 * header. The first {@link encodeRelayFrame} of a `data` body carrying exactly this view writes the
 * header into that room and returns the frame without copying the payload; later encodings (a
 * retransmission, while the first frame may still sit in a socket's write queue) copy as usual.
 * Fill it before it is encoded.
 */
export function allocateDataPayload(length: number): Uint8Array {
  if (!Number.isInteger(length) || length < 0 || length > MAX_SEGMENT_PAYLOAD_BYTES) invalidField('payload length', length);
  const frame = Buffer.allocUnsafe(DATA_PAYLOAD_OFFSET + length);
  const payload = frame.subarray(DATA_PAYLOAD_OFFSET);
  framesWithRoom.set(payload, frame);
  return payload;
}

/** The frame buffer around `payload` if it still has unused header room (and claims it). */
function claimFrameRoom(payload: Uint8Array): Uint8Array | undefined {
  const frame = framesWithRoom.get(payload);
  if (frame === undefined) return undefined;
  framesWithRoom.delete(payload);
  return frame;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function invalidField(name: string, value: unknown): never {
  throw new RelayFrameEncodeError('invalid-field', `${name} out of range: ${String(value)}`);
}

function checkUint(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) invalidField(name, value);
}

function writeU16(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 8;
  out[offset + 1] = value & 0xff;
}

function writeU32(out: Uint8Array, offset: number, value: number): void {
  out[offset] = value >>> 24;
  out[offset + 1] = (value >>> 16) & 0xff;
  out[offset + 2] = (value >>> 8) & 0xff;
  out[offset + 3] = value & 0xff;
}

/**
 * Encodes one frame into a single newly allocated buffer. Throws {@link RelayFrameEncodeError} if
 * a field is out of range (a caller bug: everything this returns decodes with
 * {@link decodeRelayFrame}).
 */
export function encodeRelayFrame(init: RelayFrameInit): Uint8Array {
  const { body } = init;
  if (!Number.isInteger(init.ack) || init.ack < NO_ACK || init.ack > MAX_SEQ) invalidField('ack', init.ack);
  checkUint('ackBits', init.ackBits, 0xffff_ffff);

  let bodyBytes: number;
  let reasonBytes: Uint8Array | undefined;
  switch (body.type) {
    case 'open':
      if (body.payload.length > MAX_OPEN_PAYLOAD_BYTES) {
        throw new RelayFrameEncodeError('payload-too-large', `open payload of ${body.payload.length} bytes`);
      }
      bodyBytes = 2 + body.payload.length;
      break;
    case 'data':
      checkUint('seq', body.seq, MAX_SEQ);
      checkUint('segmentCount', body.segmentCount, MAX_SEGMENT_COUNT);
      if (body.segmentCount === 0) invalidField('segmentCount', 0);
      checkUint('segmentIndex', body.segmentIndex, body.segmentCount - 1);
      if (body.segmentIndex > body.seq || body.seq - body.segmentIndex + body.segmentCount - 1 > MAX_SEQ) {
        invalidField('seq', body.seq);
      }
      if (body.payload.length > MAX_SEGMENT_PAYLOAD_BYTES) {
        throw new RelayFrameEncodeError('payload-too-large', `data payload of ${body.payload.length} bytes`);
      }
      bodyBytes = DATA_BODY_FIXED_BYTES + body.payload.length;
      break;
    case 'resume':
      checkUint('nextSeq', body.nextSeq, MAX_SEQ + 1);
      bodyBytes = 4;
      break;
    case 'reset':
      reasonBytes = utf8Encoder.encode(body.reason);
      if (reasonBytes.length > MAX_RESET_REASON_BYTES) {
        throw new RelayFrameEncodeError('reason-too-long', `reset reason of ${reasonBytes.length} bytes`);
      }
      bodyBytes = 2 + reasonBytes.length;
      break;
    case 'ack':
    case 'heartbeat':
    case 'close':
      bodyBytes = 0;
      break;
    default:
      return invalidField('body.type', (body as { type?: unknown }).type);
  }

  const idBytes = typeof init.streamId === 'string' ? streamIdToBytes(init.streamId) : init.streamId;
  if (idBytes.length !== STREAM_ID_BYTES) {
    throw new RelayFrameEncodeError('invalid-stream-id', `stream id of ${idBytes.length} bytes`);
  }
  // Every check is done: from here on nothing throws, so claiming the header room is final.
  const inPlace = body.type === 'data' ? claimFrameRoom(body.payload) : undefined;
  const out = inPlace ?? new Uint8Array(FRAME_HEADER_BYTES + bodyBytes);
  out[OFFSET_VERSION] = RELAY_FRAME_VERSION;
  out.set(idBytes, OFFSET_STREAM_ID);
  out[OFFSET_TAG] = FRAME_TAG[body.type];
  writeU32(out, OFFSET_ACK_NEXT, init.ack + 1);
  writeU32(out, OFFSET_ACK_BITS, init.ackBits);

  let o = FRAME_HEADER_BYTES;
  switch (body.type) {
    case 'open':
      writeU16(out, o, body.payload.length);
      out.set(body.payload, o + 2);
      break;
    case 'data':
      writeU32(out, o, body.seq);
      writeU16(out, o + 4, body.segmentIndex);
      writeU16(out, o + 6, body.segmentCount);
      writeU32(out, o + 8, body.payload.length);
      if (inPlace === undefined) out.set(body.payload, o + DATA_BODY_FIXED_BYTES);
      break;
    case 'resume':
      writeU32(out, o, body.nextSeq);
      break;
    case 'reset':
      writeU16(out, o, reasonBytes!.length);
      out.set(reasonBytes!, o + 2);
      break;
    default:
      break;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function readU16(bytes: Uint8Array, offset: number): number {
  return (bytes[offset]! << 8) | bytes[offset + 1]!;
}

function readU32(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! * 0x100_0000 + ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!);
}

function fail(code: RelayFrameErrorCode, message: string): { ok: false; error: RelayFrameDecodeError } {
  return { ok: false, error: new RelayFrameDecodeError(code, message) };
}

function truncated(needed: number, actual: number): { ok: false; error: RelayFrameDecodeError } {
  return fail('truncated', `frame needs ${needed} bytes, has ${actual}`);
}

type HeaderCheck = { ok: true; type: RelayFrameType } | { ok: false; error: RelayFrameDecodeError };

/** Size, version and tag checks shared by peekHeader and decodeRelayFrame. */
function checkHeader(bytes: Uint8Array): HeaderCheck {
  if (!(bytes instanceof Uint8Array)) return fail('truncated', 'frame is not a byte array');
  if (bytes.length > MAX_RELAY_FRAME_BYTES) {
    return fail('frame-too-large', `frame of ${bytes.length} bytes exceeds ${MAX_RELAY_FRAME_BYTES}`);
  }
  if (bytes.length === 0) return truncated(PEEK_HEADER_BYTES, 0);
  const version = bytes[OFFSET_VERSION]!;
  if (version !== RELAY_FRAME_VERSION) return fail('unsupported-version', `unsupported frame version ${version}`);
  if (bytes.length < PEEK_HEADER_BYTES) return truncated(PEEK_HEADER_BYTES, bytes.length);
  const tag = bytes[OFFSET_TAG]!;
  const type = TYPE_BY_TAG[tag];
  if (type === undefined) return fail('unknown-tag', `unknown body tag ${tag}`);
  return { ok: true, type };
}

/**
 * Reads only the version, stream id and body tag: what the relay needs to route a frame. Checks
 * the frame size limit, the version and the tag; never looks at the body.
 */
export function peekHeader(bytes: Uint8Array): RelayFramePeekResult {
  const checked = checkHeader(bytes);
  if (!checked.ok) return checked;
  return {
    ok: true,
    header: { version: RELAY_FRAME_VERSION, streamId: streamIdFromBytes(bytes, OFFSET_STREAM_ID), type: checked.type },
  };
}

/**
 * Strictly decodes one frame. Never throws: every malformed input yields
 * `{ ok: false, error: RelayFrameDecodeError }` with a specific {@link RelayFrameErrorCode}.
 * Payloads in the result are views of `bytes`.
 */
export function decodeRelayFrame(bytes: Uint8Array): RelayFrameDecodeResult {
  const checked = checkHeader(bytes);
  if (!checked.ok) return checked;
  const length = bytes.length;
  if (length < FRAME_HEADER_BYTES) return truncated(FRAME_HEADER_BYTES, length);

  let o = FRAME_HEADER_BYTES;
  let body: RelayFrameBody;
  switch (checked.type) {
    case 'open': {
      if (length < o + 2) return truncated(o + 2, length);
      const payloadLength = readU16(bytes, o);
      if (payloadLength > MAX_OPEN_PAYLOAD_BYTES) {
        return fail('payload-too-large', `open payload of ${payloadLength} bytes exceeds ${MAX_OPEN_PAYLOAD_BYTES}`);
      }
      o += 2;
      if (length < o + payloadLength) return truncated(o + payloadLength, length);
      body = { type: 'open', payload: bytes.subarray(o, o + payloadLength) };
      o += payloadLength;
      break;
    }
    case 'data': {
      if (length < o + DATA_BODY_FIXED_BYTES) return truncated(o + DATA_BODY_FIXED_BYTES, length);
      const seq = readU32(bytes, o);
      const segmentIndex = readU16(bytes, o + 4);
      const segmentCount = readU16(bytes, o + 6);
      const payloadLength = readU32(bytes, o + 8);
      if (segmentCount === 0) return fail('segment-count-zero', 'data segmentCount is 0');
      if (segmentIndex >= segmentCount) {
        return fail('segment-index-out-of-range', `segmentIndex ${segmentIndex} >= segmentCount ${segmentCount}`);
      }
      if (seq > MAX_SEQ || segmentIndex > seq || seq - segmentIndex + segmentCount - 1 > MAX_SEQ) {
        return fail('seq-out-of-range', `data seq ${seq} (segment ${segmentIndex}/${segmentCount}) out of range`);
      }
      if (payloadLength > MAX_SEGMENT_PAYLOAD_BYTES) {
        return fail('payload-too-large', `data payload of ${payloadLength} bytes exceeds ${MAX_SEGMENT_PAYLOAD_BYTES}`);
      }
      o += DATA_BODY_FIXED_BYTES;
      if (length < o + payloadLength) return truncated(o + payloadLength, length);
      body = { type: 'data', seq, segmentIndex, segmentCount, payload: bytes.subarray(o, o + payloadLength) };
      o += payloadLength;
      break;
    }
    case 'resume': {
      if (length < o + 4) return truncated(o + 4, length);
      body = { type: 'resume', nextSeq: readU32(bytes, o) };
      o += 4;
      break;
    }
    case 'reset': {
      if (length < o + 2) return truncated(o + 2, length);
      const reasonLength = readU16(bytes, o);
      if (reasonLength > MAX_RESET_REASON_BYTES) {
        return fail('reason-too-long', `reset reason of ${reasonLength} bytes exceeds ${MAX_RESET_REASON_BYTES}`);
      }
      o += 2;
      if (length < o + reasonLength) return truncated(o + reasonLength, length);
      let reason: string;
      try {
        reason = utf8Decoder.decode(bytes.subarray(o, o + reasonLength));
      } catch {
        return fail('reason-not-utf8', 'reset reason is not valid UTF-8');
      }
      body = { type: 'reset', reason };
      o += reasonLength;
      break;
    }
    case 'ack':
      body = ACK_BODY;
      break;
    case 'heartbeat':
      body = HEARTBEAT_BODY;
      break;
    case 'close':
      body = CLOSE_BODY;
      break;
  }
  if (o !== length) return fail('trailing-bytes', `${length - o} trailing bytes after the ${checked.type} body`);

  return {
    ok: true,
    frame: {
      version: RELAY_FRAME_VERSION,
      streamId: streamIdFromBytes(bytes, OFFSET_STREAM_ID),
      ack: readU32(bytes, OFFSET_ACK_NEXT) - 1,
      ackBits: readU32(bytes, OFFSET_ACK_BITS),
      body,
    },
  };
}

/**
 * Like {@link decodeRelayFrame} but throws the {@link RelayFrameDecodeError} (and only that) for
 * callers that prefer exceptions.
 */
export function decodeRelayFrameOrThrow(bytes: Uint8Array): RelayFrame {
  const result = decodeRelayFrame(bytes);
  if (!result.ok) throw result.error;
  return result.frame;
}

/** True if `ackBits` acknowledges `seq` relative to `ack` (bit i is seq `ack + 1 + i`). */
export function ackBitsInclude(ack: number, ackBits: number, seq: number): boolean {
  const i = seq - ack - 1;
  return i >= 0 && i < ACK_BITS_WIDTH && ((ackBits >>> i) & 1) === 1;
}
