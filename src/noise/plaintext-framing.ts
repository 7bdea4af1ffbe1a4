/**
 * The plaintext framing inside the Noise transport messages (Noise does not keep message boundaries):
 *
 * ```text
 * message = length:u32be  utf8-json[length]          length ≤ maxMessageBytes (default 64 MiB)
 * abort   = 0xFFFFFFFF  reasonLength:u32be  reason   sender refuses/aborts the channel, reasonLength ≤ 1024
 * binary  = 0xFFFFFFFE  length:u32be  bytes[length]   a binary message (`binaryOutput`), length ≤ maxMessageBytes
 * ```
 *
 * The framed byte stream is cut into records of at most MAX_RECORD_PLAINTEXT_BYTES (65,518), each
 * written as one Noise transport message (≤ 65,535 bytes with its 16-byte tag); records are packed
 * full while bytes are queued, regardless of message boundaries. A declared length above the maximum fails the
 * channel before any buffer of that size is allocated.
 */
import { MAX_SEGMENT_PAYLOAD_BYTES } from '../relay-frame/limits.js';
import { NoiseChannelError } from './noise-channel-error.js';
import { MAX_NOISE_MESSAGE_BYTES, NOISE_LENGTH_BYTES, NOISE_TAG_BYTES } from './transport-message.js';

/**
 * Largest plaintext this side puts in one Noise transport message: 65,518 bytes, so that the Noise
 * message with its 2-byte length and 16-byte tag is 65,536 bytes, exactly one relay segment
 * (MAX_SEGMENT_PAYLOAD_BYTES), one below the Noise limit (65,535 − 16 = 65,519). Receivers take any
 * record up to the Noise limit (earlier builds sent at most 60 KiB; old and new interoperate both ways).
 */
export const MAX_RECORD_PLAINTEXT_BYTES = Math.min(
  MAX_NOISE_MESSAGE_BYTES - NOISE_TAG_BYTES,
  MAX_SEGMENT_PAYLOAD_BYTES - NOISE_LENGTH_BYTES - NOISE_TAG_BYTES,
);
/** The length field value that marks an abort frame; every message length is below it. */
export const ABORT_MARKER = 0xffffffff;
const MAX_ABORT_REASON_BYTES = 1024;
/**
 * The abort reason an agent sends to a client whose proven identity it does not authorize; the
 * client's channel then fails with `client-not-authorized` (not a generic `peer-aborted`).
 */
export const CLIENT_NOT_AUTHORIZED_ABORT_REASON = 'client identity not authorized by this agent';
/** The length field value that marks a binary message frame (its length follows). */
export const BINARY_MARKER = 0xfffffffe;
const HEADER_BYTES = 4;

/** `0xFFFFFFFE length:u32be`: the header of a binary message frame, whose body the caller sends after it. */
export function encodeBinaryFrameHeader(byteLength: number): Uint8Array {
  const header = Buffer.allocUnsafe(2 * HEADER_BYTES);
  header.writeUInt32BE(BINARY_MARKER, 0);
  header.writeUInt32BE(byteLength, HEADER_BYTES);
  return header;
}

/** A marker whose frame has a second u32 (the abort reason's or the binary message's length). */
function isMarker(value: number): boolean {
  return value === ABORT_MARKER || value === BINARY_MARKER;
}

/** `length:u32be utf8` of `message`, whose UTF-8 length is `byteLength`: encoded straight from the string, one copy. */
export function encodeMessageFrame(message: string, byteLength: number): Uint8Array {
  const framed = Buffer.allocUnsafe(HEADER_BYTES + byteLength);
  framed.writeUInt32BE(byteLength, 0);
  framed.write(message, HEADER_BYTES, byteLength, 'utf8');
  return framed;
}

/** The abort frame carrying `reason` (cut to its first 1024 UTF-8 bytes). */
export function encodeAbortFrame(reason: string): Uint8Array {
  let text = Buffer.from(reason, 'utf8');
  if (text.byteLength > MAX_ABORT_REASON_BYTES) text = text.subarray(0, MAX_ABORT_REASON_BYTES);
  const frame = new Uint8Array(2 * HEADER_BYTES + text.byteLength);
  const view = new DataView(frame.buffer);
  view.setUint32(0, ABORT_MARKER);
  view.setUint32(HEADER_BYTES, text.byteLength);
  frame.set(text, 2 * HEADER_BYTES);
  return frame;
}

/** Where the parser's output goes: the channel that owns it. */
export interface PlaintextFrameSink {
  /** One complete message body (`binary`: a binary frame's); resolves false once the channel is closed (parsing stops). */
  deliver(body: Uint8Array, binary: boolean): Promise<boolean>;
  /** The peer aborted or broke the framing; `peerNotice`, when given, is for an abort frame to the peer. */
  fail(error: NoiseChannelError, peerNotice?: string): void;
}

/**
 * Parses the plaintext of the records received, in order: `length:u32be body` messages and binary
 * frames (a body
 * inside one record is delivered as a view, one spanning records is gathered into a buffer of its
 * declared length) and the abort frame.
 */
export class PlaintextFrameParser {
  /** Header bytes gathered so far when a header straddles records (4, or 8 for an abort frame). */
  private readonly header = new Uint8Array(2 * HEADER_BYTES);
  private headerFill = 0;
  /** The message (or abort reason) being reassembled from several records, and how much of it is in. */
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private bodyIsAbortReason = false;
  private bodyIsBinary = false;

  constructor(
    private readonly maxMessageBytes: number,
    private readonly sink: PlaintextFrameSink,
  ) {}

  /** Bytes of a header or body received but not yet complete. */
  get partialBytes(): number {
    return this.headerFill + this.bodyFill;
  }

  /** Parses one record's plaintext, delivering every message it completes; false once the channel is closed. */
  async accept(record: Uint8Array): Promise<boolean> {
    let offset = 0;
    while (offset < record.byteLength) {
      if (this.body !== null) {
        const take = Math.min(this.body.byteLength - this.bodyFill, record.byteLength - offset);
        this.body.set(record.subarray(offset, offset + take), this.bodyFill);
        this.bodyFill += take;
        offset += take;
        if (this.bodyFill < this.body.byteLength) return true;
        const body = this.body;
        this.body = null;
        this.bodyFill = 0;
        if (this.bodyIsAbortReason) return this.receiveAbort(body);
        if (!(await this.sink.deliver(body, this.bodyIsBinary))) return false;
        continue;
      }
      // The header (4 bytes; 8 for the abort frame, whose reason length follows its marker): read in
      // place when the record holds all of it, else gathered across records.
      let declared: number;
      let reasonBytes = 0;
      const available = record.byteLength - offset;
      if (this.headerFill === 0 && available >= HEADER_BYTES && (!isMarker(readU32(record, offset)) || available >= 2 * HEADER_BYTES)) {
        declared = readU32(record, offset);
        offset += HEADER_BYTES;
        if (isMarker(declared)) {
          reasonBytes = readU32(record, offset);
          offset += HEADER_BYTES;
        }
      } else {
        for (;;) {
          const need = this.headerFill >= HEADER_BYTES && isMarker(readU32(this.header, 0)) ? 2 * HEADER_BYTES : HEADER_BYTES;
          if (this.headerFill === need) break;
          if (offset === record.byteLength) return true;
          const take = Math.min(need - this.headerFill, record.byteLength - offset);
          this.header.set(record.subarray(offset, offset + take), this.headerFill);
          this.headerFill += take;
          offset += take;
        }
        declared = readU32(this.header, 0);
        if (isMarker(declared)) reasonBytes = readU32(this.header, HEADER_BYTES);
        this.headerFill = 0;
      }
      const binary = declared === BINARY_MARKER;
      if (declared === ABORT_MARKER) {
        if (reasonBytes > MAX_ABORT_REASON_BYTES) {
          this.sink.fail(new NoiseChannelError('protocol-error', `peer sent an abort frame with a ${reasonBytes}-byte reason (maximum ${MAX_ABORT_REASON_BYTES}); secure channel closed`));
          return false;
        }
        if (record.byteLength - offset >= reasonBytes) return this.receiveAbort(record.subarray(offset, offset + reasonBytes));
        this.body = new Uint8Array(reasonBytes);
        this.bodyFill = 0;
        this.bodyIsAbortReason = true;
        continue;
      }
      if (binary) declared = reasonBytes;
      if (declared > this.maxMessageBytes) {
        this.sink.fail(
          new NoiseChannelError(
            'message-too-large',
            `peer declared a message of ${declared} bytes, above the maximum of ${this.maxMessageBytes} bytes; secure channel closed`,
          ),
          `message of ${declared} bytes exceeds the maximum of ${this.maxMessageBytes} bytes`,
        );
        return false;
      }
      if (record.byteLength - offset >= declared) {
        const body = record.subarray(offset, offset + declared);
        offset += declared;
        if (!(await this.sink.deliver(body, binary))) return false;
        continue;
      }
      this.body = Buffer.allocUnsafe(declared);
      this.bodyFill = 0;
      this.bodyIsAbortReason = false;
      this.bodyIsBinary = binary;
    }
    return true;
  }

  private receiveAbort(reason: Uint8Array): false {
    const text = new TextDecoder().decode(reason);
    this.sink.fail(
      text === CLIENT_NOT_AUTHORIZED_ABORT_REASON
        ? new NoiseChannelError('client-not-authorized', `the agent refused this client: ${text}`)
        : new NoiseChannelError('peer-aborted', `secure channel closed by the peer: ${text}`),
    );
    return false;
  }
}

function readU32(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! * 0x100_0000 + ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!);
}
