/**
 * JSON-RPC messages on a codex Noise stream (protocol notes §8): each message is a 4-byte
 * big-endian length and its UTF-8 JSON; the byte stream is cut into records of at most
 * {@link CODEX_RECORD_PLAINTEXT_BYTES}, each sealed as one Noise transport message. A sender
 * frames each message on its own; a receiver accepts a message spanning records and several
 * messages in one record.
 */
import { CodexChannelError } from './codex-channel-error.js';
import { CODEX_MESSAGE_LENGTH_PREFIX_BYTES, CODEX_RECORD_PLAINTEXT_BYTES } from './codex-channel-limits.js';

/** The plaintext records of one message. */
export function messageRecords(message: string): Buffer[] {
  const json = Buffer.from(message, 'utf8');
  const framed = Buffer.allocUnsafe(CODEX_MESSAGE_LENGTH_PREFIX_BYTES + json.length);
  framed.writeUInt32BE(json.length, 0);
  json.copy(framed, CODEX_MESSAGE_LENGTH_PREFIX_BYTES);
  const records: Buffer[] = [];
  for (let offset = 0; offset < framed.length; offset += CODEX_RECORD_PLAINTEXT_BYTES) {
    records.push(framed.subarray(offset, offset + CODEX_RECORD_PLAINTEXT_BYTES));
  }
  return records;
}

/** Reassembles messages from records' plaintext, in order. */
export class MessageReassembler {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** Adds one record's plaintext; returns the messages it completed. @throws CodexChannelError `bad-message-length`. */
  push(plaintext: Buffer): string[] {
    if (plaintext.length > 0) {
      this.chunks.push(plaintext);
      this.buffered += plaintext.length;
    }
    const messages: string[] = [];
    for (;;) {
      if (this.buffered < CODEX_MESSAGE_LENGTH_PREFIX_BYTES) break;
      const head = this.peek(CODEX_MESSAGE_LENGTH_PREFIX_BYTES);
      const length = head.readUInt32BE(0);
      if (length === 0 || length > this.maxMessageBytes) {
        throw new CodexChannelError('bad-message-length', `the executor sent a message of ${length} bytes (allowed 1..${this.maxMessageBytes})`);
      }
      if (this.buffered < CODEX_MESSAGE_LENGTH_PREFIX_BYTES + length) break;
      const whole = this.take(CODEX_MESSAGE_LENGTH_PREFIX_BYTES + length);
      messages.push(whole.subarray(CODEX_MESSAGE_LENGTH_PREFIX_BYTES).toString('utf8'));
    }
    return messages;
  }

  private peek(bytes: number): Buffer {
    if (this.chunks[0]!.length >= bytes) return this.chunks[0]!;
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!;
  }

  private take(bytes: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const rest = all.subarray(bytes);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return all.subarray(0, bytes);
  }
}
