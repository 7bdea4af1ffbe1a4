/**
 * The Noise transport message on the wire, `length:u16be ciphertext+tag`: exactly the bytes
 * libp2p-noise's own pipeline writes (test/unit/src/noise/noise-channel.wire.test.ts talks to a stock libp2p-noise 16
 * connection both ways), sealed and opened with the cipher states its handshake derived.
 */
import { Uint8ArrayList } from 'uint8arraylist';
import { RecordAuthenticationError } from './record-authentication.js';
import type { NoiseCipherPair } from './secure-connection-hook.js';

/** Bytes of a Noise message's length prefix (u16be) on the wire. */
export const NOISE_LENGTH_BYTES = 2;
/** ChaCha20-Poly1305 tag bytes at the end of every Noise transport message. */
export const NOISE_TAG_BYTES = 16;
/** Largest Noise message (ciphertext and tag): its length is a u16. */
export const MAX_NOISE_MESSAGE_BYTES = 65_535;

/**
 * Encrypts one plaintext record, given as its parts (views, in order), into a Noise transport
 * message written into one buffer from `allocateChunk` (the duplex's, so it can be sent without
 * another copy). The parts go to the cipher as they are: no concatenation of the plaintext.
 */
export function sealTransportMessage(cipher: NoiseCipherPair, record: readonly Uint8Array[], allocateChunk: (length: number) => Uint8Array): Uint8Array {
  // A list in, a list out: libp2p-noise's node:crypto path then returns [ciphertext..., tag]
  // without concatenating them (small records take its WebAssembly path and return one array).
  const sealed = cipher.encrypt(new Uint8ArrayList(...record));
  const length = sealed.byteLength;
  const message = allocateChunk(NOISE_LENGTH_BYTES + length);
  message[0] = length >>> 8;
  message[1] = length & 0xff;
  if (sealed instanceof Uint8Array) {
    message.set(sealed, NOISE_LENGTH_BYTES);
  } else {
    let offset = NOISE_LENGTH_BYTES;
    for (const part of sealed) {
      message.set(part, offset);
      offset += part.byteLength;
    }
  }
  return message;
}

/** Decrypts one Noise transport message (ciphertext+tag, without its length); throws a RecordAuthenticationError when it does not authenticate. */
export function openTransportMessage(cipher: NoiseCipherPair, sealed: Uint8Array): Uint8Array {
  if (sealed.byteLength < NOISE_TAG_BYTES) throw new RecordAuthenticationError(new Error('Noise message shorter than its tag'));
  // Like libp2p-noise's decryptStream: small messages are decrypted in place (WebAssembly path).
  const plaintext = cipher.decrypt(sealed, sealed.subarray(0, sealed.byteLength - NOISE_TAG_BYTES));
  return plaintext instanceof Uint8Array ? plaintext : plaintext.subarray();
}

/** Cuts the received byte chunks into Noise transport messages (ciphertext+tag each). */
export class TransportMessageSplitter {
  /**
   * Bytes of a Noise message split across chunks (never the case between two endpoints of this
   * module, whose chunks are whole Noise messages, but the duplex does not promise it).
   */
  private readonly pending = new Uint8ArrayList();

  /** Bytes received of a Noise message not yet complete. */
  get partialBytes(): number {
    return this.pending.byteLength;
  }

  /** The Noise messages `chunk` completes, in order. */
  *split(chunk: Uint8Array | Uint8ArrayList): Generator<Uint8Array> {
    const pending = this.pending;
    if (pending.byteLength === 0 && chunk instanceof Uint8Array) {
      // Whole Noise messages straight from the chunk, no copy; a partial tail goes to `pending`.
      let offset = 0;
      while (chunk.byteLength - offset >= NOISE_LENGTH_BYTES) {
        const length = (chunk[offset]! << 8) | chunk[offset + 1]!;
        const end = offset + NOISE_LENGTH_BYTES + length;
        if (end > chunk.byteLength) break;
        yield chunk.subarray(offset + NOISE_LENGTH_BYTES, end);
        offset = end;
      }
      if (offset < chunk.byteLength) pending.append(chunk.subarray(offset));
      return;
    }
    pending.append(chunk);
    while (pending.byteLength >= NOISE_LENGTH_BYTES) {
      const length = pending.getUint16(0);
      if (pending.byteLength < NOISE_LENGTH_BYTES + length) break;
      const sealed = pending.subarray(NOISE_LENGTH_BYTES, NOISE_LENGTH_BYTES + length);
      pending.consume(NOISE_LENGTH_BYTES + length);
      yield sealed;
    }
  }
}
