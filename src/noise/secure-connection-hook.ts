/**
 * The hook that takes libp2p-noise's transport phase over. All cryptography stays libp2p-noise's:
 * the handshake, and for the transport phase the cipher states it derives (keys, nonces, its
 * ChaCha20-Poly1305). `createSecureConnection(connection, handshake)`, a private method of the
 * libp2p-noise 16 instance, is where it builds its it-pipe transport pipeline (length-prefix
 * decoding, encryptStream/decryptStream, a duplex pair); the hook set here takes the handshake's
 * cipher pair and the raw duplex there instead, and the channel moves the Noise messages itself,
 * byte for byte the same on the wire (see transport-message.ts), without the pipeline's per-record
 * generators, list copies and signal races.
 */
import type { Uint8ArrayList } from 'uint8arraylist';

/** The duplex shape libp2p-noise 16 secures (`@libp2p/interface` 2.x SecurableStream). */
export interface NoiseStream {
  source: AsyncGenerator<Uint8Array | Uint8ArrayList>;
  sink: (source: AsyncGenerator<Uint8Array | Uint8ArrayList>) => Promise<void>;
}

/** What libp2p-noise's handshake returns: the transport cipher states (its nonces, its keys, its crypto). */
export interface NoiseCipherPair {
  encrypt(plaintext: Uint8Array | Uint8ArrayList): Uint8Array | Uint8ArrayList;
  decrypt(ciphertext: Uint8Array | Uint8ArrayList, dst?: Uint8Array): Uint8Array | Uint8ArrayList;
}

/** libp2p-noise's handshake stream after the handshake: `unwrap()` gives back the raw duplex. */
interface HandshakeConnection {
  unwrap(): NoiseStream;
}

/** The private libp2p-noise 16 method the hook replaces. */
interface SecureConnectionHook {
  createSecureConnection(connection: HandshakeConnection, handshake: NoiseCipherPair): Promise<NoiseStream>;
}

/** The established transport: the raw duplex as libp2p-noise hands it back, and the cipher pair. */
export interface SecureTransport {
  readonly source: AsyncIterable<Uint8Array | Uint8ArrayList>;
  readonly sink: (source: AsyncGenerator<Uint8Array>) => Promise<void>;
  readonly cipher: NoiseCipherPair;
}

/**
 * Sets the hook on a libp2p-noise 16 connection encrypter. The returned function gives the transport
 * its handshake handed over, or undefined while (or if) libp2p-noise has not called the hook.
 */
export function takeOverTransport(encrypter: object): () => SecureTransport | undefined {
  let transport: SecureTransport | undefined;
  (encrypter as SecureConnectionHook).createSecureConnection = async (connection, handshake) => {
    // Taken now: libp2p-noise overwrites the duplex's source and sink with what this returns.
    const network = connection.unwrap();
    transport = { source: network.source, sink: network.sink, cipher: handshake };
    return { source: (async function* () {})(), sink: async () => undefined };
  };
  return () => transport;
}
