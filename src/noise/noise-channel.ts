/**
 * Layer 4: a Noise channel (`@chainsafe/libp2p-noise` 16.x, XX handshake, X25519 + ChaChaPoly +
 * SHA256, static keys signed by Ed25519 identities) over a {@link ByteDuplex}, exposed as a
 * {@link MessageTransport} of whole UTF-8 JSON messages.
 *
 * The client is the Noise initiator and pins the agent's identity (`secureOutbound` with
 * `remotePeer`), so the handshake fails, before the client reveals its own identity, on any other key.
 * The agent is the responder and may restrict clients to an allowlist, checked after the handshake.
 *
 * Plaintext framing inside the Noise transport messages (Noise does not keep message boundaries):
 *
 * ```text
 * message = length:u32be  utf8-json[length]          length ≤ maxMessageBytes (default 64 MiB)
 * abort   = 0xFFFFFFFF  reasonLength:u32be  reason   sender refuses/aborts the channel, reasonLength ≤ 1024
 * ```
 *
 * The framed byte stream is cut into records of at most 60 KiB, each written as one Noise transport
 * message (≤ 65,535 bytes with its 16-byte tag). A declared length above the maximum fails the
 * channel before any buffer of that size is allocated. A record that fails authentication (a flipped
 * bit injected by the relay, a replayed or reordered record) closes the channel with an
 * `authentication-failed` error; a message is delivered only when all of its records authenticated.
 *
 * All cryptography is libp2p-noise's: the handshake, and for the transport phase the cipher states
 * it derives (keys, nonces, its ChaCha20-Poly1305). After the handshake this module takes those
 * cipher states over (see {@link SecureConnectionHook}) and moves the Noise messages itself,
 * `length:u16be ciphertext+tag` each, exactly the bytes libp2p-noise's own pipeline writes
 * (test/noise-wire.test.ts talks to a stock libp2p-noise 16 connection both ways), without that
 * pipeline's per-record generators and copies. Outbound messages are sealed into buffers the duplex
 * can send without another copy (`ByteDuplex.allocateChunk`). See docs/performance.md.
 */
import { noise } from '@chainsafe/libp2p-noise';
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto';
import type { ICryptoInterface } from '@chainsafe/libp2p-noise';
import type { ComponentLogger, Logger, PeerId, Upgrader } from '@libp2p/interface';
import { Uint8ArrayList } from 'uint8arraylist';
import type { ByteDuplex } from '../transport/byte-duplex.js';
import type { MessageTransport } from '../transport/message-transport.js';
import { parsePublicIdentity, type Identity } from './identity.js';

/** Largest plaintext carried by one Noise transport message (the reference relay's record size). */
export const MAX_RECORD_PLAINTEXT_BYTES = 60 * 1024;
/** Default cap on one JSON-RPC message (the reference relay's limit). */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Default bound on plaintext accepted by `send` but not yet taken by the encrypting pipeline. */
export const DEFAULT_SEND_BUFFER_BYTES = 1024 * 1024;
/** How long `close()` lets already accepted messages flush before the duplex is cut. */
export const CLOSE_FLUSH_TIMEOUT_MS = 5_000;

const ABORT_MARKER = 0xffffffff;
const MAX_ABORT_REASON_BYTES = 1024;
const HEADER_BYTES = 4;

/** Fixed reasons a Noise channel fails; usable as a metric label. */
export type NoiseChannelErrorCode =
  | 'handshake-timeout'
  | 'handshake-aborted'
  | 'handshake-failed'
  | 'agent-identity-mismatch'
  | 'client-not-authorized'
  | 'authentication-failed'
  | 'message-too-large'
  | 'protocol-error'
  | 'peer-aborted'
  | 'stream-failed'
  | 'invalid-options';

/** Every failure of a Noise channel, in the handshake or afterwards. */
export class NoiseChannelError extends Error {
  override readonly name = 'NoiseChannelError';
  constructor(
    readonly code: NoiseChannelErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Options common to both ends of a channel. */
export interface NoiseChannelOptions {
  /** This endpoint's static identity (see `identity.ts`). */
  identity: Identity;
  /** The handshake fails with `handshake-timeout` when it has not completed within this time. */
  handshakeTimeoutMs: number;
  /** Bytes both ends must agree on (e.g. an encoding of the stream id); mixed into the handshake hash. */
  prologue?: Uint8Array;
  /** Largest message accepted from the peer and by `send`. Default 64 MiB. */
  maxMessageBytes?: number;
  /** Bound on plaintext buffered by `send` before it awaits the sink. Default 1 MiB. */
  sendBufferBytes?: number;
  /** Aborts the handshake (not the established channel). */
  signal?: AbortSignal;
}

/** Options of {@link openClientChannel}. */
export interface ClientChannelOptions extends NoiseChannelOptions {
  /** The agent's pinned public identity; the handshake fails on any other key. */
  expectedAgent: PeerId | string;
}

/** Options of {@link acceptAgentChannel}. */
export interface AgentChannelOptions extends NoiseChannelOptions {
  /** Canonical public identities of the clients allowed in; absent = any client. */
  authorizedClients?: ReadonlySet<string>;
}

/** An established Noise channel: a MessageTransport that knows who is at the other end. */
export interface SecureChannel extends MessageTransport {
  readonly kind: 'relay';
  /** Public identity of this endpoint. */
  readonly localIdentity: string;
  /** Public identity the peer proved in the handshake. */
  readonly remoteIdentity: string;
}

/**
 * Runs the Noise handshake as initiator (client) over `duplex`, pinning the agent's identity.
 * On any failure the promise rejects with a {@link NoiseChannelError} and the duplex is released
 * (sink ended, source stopped). It always settles within `handshakeTimeoutMs`.
 */
export async function openClientChannel(duplex: ByteDuplex, options: ClientChannelOptions): Promise<SecureChannel> {
  const guard = new DuplexGuard(duplex);
  let expected: PeerId;
  try {
    validateOptions(options);
    expected = toPinnedPeer(options.expectedAgent);
  } catch (error) {
    guard.stop(error as Error);
    throw error;
  }
  const expectedText = expected.toString();
  const secured = await runHandshake(guard, options, 'initiator', expected, (error) => {
    const presented = presentedKeyOf(error);
    if (presented === undefined) return undefined;
    return new NoiseChannelError(
      'agent-identity-mismatch',
      `agent identity did not match: expected ${expectedText}, the agent presented ${presented}`,
      { cause: error },
    );
  });
  const remoteIdentity = secured.remotePeer.toString();
  if (!secured.remotePeer.equals(expected)) {
    // Unreachable with libp2p-noise pinning in place; kept as a second lock on the same door.
    const error = new NoiseChannelError(
      'agent-identity-mismatch',
      `agent identity did not match: expected ${expectedText}, the agent presented ${remoteIdentity}`,
    );
    guard.stop(error);
    throw error;
  }
  return new NoiseMessageChannel(secured.transport, guard, options, remoteIdentity);
}

/**
 * Runs the Noise handshake as responder (agent) over `duplex`. When `authorizedClients` is given and
 * the client's proven identity is not in it, the client is told so in an abort frame, the channel is
 * closed and the promise rejects with `client-not-authorized`. On any failure the duplex is released.
 * It always settles within `handshakeTimeoutMs`.
 */
export async function acceptAgentChannel(duplex: ByteDuplex, options: AgentChannelOptions): Promise<SecureChannel> {
  const guard = new DuplexGuard(duplex);
  try {
    validateOptions(options);
  } catch (error) {
    guard.stop(error as Error);
    throw error;
  }
  const secured = await runHandshake(guard, options, 'responder', undefined, () => undefined);
  const remoteIdentity = secured.remotePeer.toString();
  const channel = new NoiseMessageChannel(secured.transport, guard, options, remoteIdentity);
  if (options.authorizedClients !== undefined && !options.authorizedClients.has(remoteIdentity)) {
    const error = new NoiseChannelError(
      'client-not-authorized',
      `client ${remoteIdentity} is not in this agent's authorized clients; secure channel refused`,
    );
    channel.abort(error, `client identity ${remoteIdentity} is not authorized by this agent`);
    throw error;
  }
  return channel;
}

// ---------------------------------------------------------------------------------------------
// Handshake

/** The duplex shape libp2p-noise 16 secures (`@libp2p/interface` 2.x SecurableStream). */
interface NoiseStream {
  source: AsyncGenerator<Uint8Array | Uint8ArrayList>;
  sink: (source: AsyncGenerator<Uint8Array | Uint8ArrayList>) => Promise<void>;
}

/** What libp2p-noise's handshake returns: the transport cipher states (its nonces, its keys, its crypto). */
interface NoiseCipherPair {
  encrypt(plaintext: Uint8Array | Uint8ArrayList): Uint8Array | Uint8ArrayList;
  decrypt(ciphertext: Uint8Array | Uint8ArrayList, dst?: Uint8Array): Uint8Array | Uint8ArrayList;
}

/** libp2p-noise's handshake stream after the handshake: `unwrap()` gives back the raw duplex. */
interface HandshakeConnection {
  unwrap(): NoiseStream;
}

/**
 * The hook this module sets on the libp2p-noise 16 instance. `createSecureConnection(connection,
 * handshake)` is where libp2p-noise builds its it-pipe transport pipeline (length-prefix decoding,
 * encryptStream/decryptStream, a duplex pair); this module takes the handshake's cipher pair and the
 * raw duplex there instead and runs the transport phase itself, byte for byte the same on the wire
 * (`u16be length, ChaChaPoly ciphertext+tag` per Noise message, encrypted and decrypted by the same
 * cipher states), without the pipeline's per-record generators, list copies and signal races.
 */
interface SecureConnectionHook {
  createSecureConnection(connection: HandshakeConnection, handshake: NoiseCipherPair): Promise<NoiseStream>;
}

/** The established transport: the raw duplex as libp2p-noise hands it back, and the cipher pair. */
interface SecureTransport {
  readonly source: AsyncIterable<Uint8Array | Uint8ArrayList>;
  readonly sink: (source: AsyncGenerator<Uint8Array>) => Promise<void>;
  readonly cipher: NoiseCipherPair;
}

interface SecuredStream {
  transport: SecureTransport;
  remotePeer: PeerId;
}

async function runHandshake(
  guard: DuplexGuard,
  options: NoiseChannelOptions,
  role: 'initiator' | 'responder',
  remotePeer: PeerId | undefined,
  classifyPinning: (error: unknown) => NoiseChannelError | undefined,
): Promise<SecuredStream> {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new NoiseChannelError('handshake-timeout', 'Noise handshake timed out'));
  }, options.handshakeTimeoutMs);
  const onCallerAbort = (): void => controller.abort(new NoiseChannelError('handshake-aborted', 'Noise handshake aborted'));
  options.signal?.addEventListener('abort', onCallerAbort, { once: true });
  if (options.signal?.aborted === true) onCallerAbort();

  const encrypter = noise({
    crypto: authenticationTaggingCrypto,
    ...(options.prologue === undefined ? {} : { prologueBytes: options.prologue }),
  })({
    peerId: options.identity.peerId,
    privateKey: options.identity.privateKey,
    logger: silentComponentLogger,
    upgrader: noMuxerUpgrader,
  });
  let transport: SecureTransport | undefined;
  (encrypter as unknown as SecureConnectionHook).createSecureConnection = async (connection, handshake) => {
    // Taken now: libp2p-noise overwrites the duplex's source and sink with what this returns.
    const network = connection.unwrap();
    transport = { source: network.source, sink: network.sink, cipher: handshake };
    return { source: (async function* () {})(), sink: async () => undefined };
  };
  const secureOptions = { signal: controller.signal, skipStreamMuxerNegotiation: true, ...(remotePeer ? { remotePeer } : {}) };
  try {
    const secured =
      role === 'initiator'
        ? await encrypter.secureOutbound(guard.noiseStream, secureOptions)
        : await encrypter.secureInbound(guard.noiseStream, secureOptions);
    if (transport === undefined) {
      throw new Error('libp2p-noise did not hand over its transport cipher states (an unsupported @chainsafe/libp2p-noise version?)');
    }
    return { transport, remotePeer: secured.remotePeer };
  } catch (error) {
    const failure = timedOut
      ? new NoiseChannelError(
          'handshake-timeout',
          `Noise handshake timed out after ${options.handshakeTimeoutMs} ms (as ${role}); the peer did not complete it`,
          { cause: error },
        )
      : controller.signal.aborted
        ? new NoiseChannelError('handshake-aborted', `Noise handshake aborted (as ${role})`, { cause: error })
        : (classifyPinning(error) ?? classifyHandshakeError(error, role));
    guard.stop(failure);
    throw failure;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener('abort', onCallerAbort);
  }
}

function classifyHandshakeError(error: unknown, role: 'initiator' | 'responder'): NoiseChannelError {
  const peer = role === 'initiator' ? 'agent' : 'client';
  // libp2p-noise rewraps handshake decryption errors without `cause`; our tag survives in the text.
  if (hasInChain(error, (e) => e instanceof RecordAuthenticationError || e.message.includes(RECORD_AUTHENTICATION_FAILED))) {
    return new NoiseChannelError(
      'handshake-failed',
      `Noise handshake failed: a handshake message did not authenticate (prologue mismatch, or the handshake was tampered with)`,
      { cause: error },
    );
  }
  if (hasInChain(error, (e) => e.name === 'UnexpectedEOFError')) {
    const hint = role === 'responder' ? ' (a client that does not trust this agent\'s identity hangs up here)' : '';
    return new NoiseChannelError(
      'handshake-failed',
      `Noise handshake failed: the ${peer} closed the stream during the handshake${hint}`,
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new NoiseChannelError('handshake-failed', `Noise handshake failed (as ${role}): ${message}`, { cause: error });
}

/** Extracts the key a pinned handshake was offered, from libp2p-noise's UnexpectedPeerError text. */
function presentedKeyOf(error: unknown): string | undefined {
  if (!(error instanceof Error) || error.name !== 'UnexpectedPeerError') return undefined;
  const match = /Payload identity key (\S+) does not match expected remote identity key/.exec(error.message);
  return match?.[1];
}

function toPinnedPeer(expected: PeerId | string): PeerId {
  let peer: PeerId;
  try {
    peer = typeof expected === 'string' ? parsePublicIdentity(expected) : expected;
  } catch (error) {
    throw new NoiseChannelError('invalid-options', `expected agent identity is invalid: ${(error as Error).message}`, { cause: error });
  }
  if (peer.publicKey === undefined) {
    // libp2p-noise silently skips pinning when the PeerId carries no public key (e.g. an RSA id).
    throw new NoiseChannelError('invalid-options', `expected agent identity ${peer.toString()} carries no public key and cannot be pinned`);
  }
  return peer;
}

function validateOptions(options: NoiseChannelOptions): void {
  const positive = (value: number | undefined): boolean => value === undefined || (Number.isFinite(value) && value > 0);
  if (!Number.isFinite(options.handshakeTimeoutMs) || options.handshakeTimeoutMs <= 0) {
    throw new NoiseChannelError('invalid-options', `handshakeTimeoutMs must be a positive number, got ${options.handshakeTimeoutMs}`);
  }
  if (!positive(options.maxMessageBytes) || (options.maxMessageBytes ?? 0) >= ABORT_MARKER) {
    throw new NoiseChannelError('invalid-options', `maxMessageBytes must be between 1 and ${ABORT_MARKER - 1}, got ${options.maxMessageBytes}`);
  }
  if (!positive(options.sendBufferBytes)) {
    throw new NoiseChannelError('invalid-options', `sendBufferBytes must be a positive number, got ${options.sendBufferBytes}`);
  }
}

const RECORD_AUTHENTICATION_FAILED = 'ChaCha20-Poly1305 record authentication failed';

/** Thrown by the decrypt primitive below so a tampered record is told apart from a failing stream. */
class RecordAuthenticationError extends Error {
  override readonly name = 'RecordAuthenticationError';
  constructor(cause: unknown) {
    super(RECORD_AUTHENTICATION_FAILED, { cause });
  }
}

/** libp2p-noise's own crypto, with decryption failures tagged (no cryptography of our own). */
const authenticationTaggingCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst) {
    try {
      return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst);
    } catch (error) {
      throw new RecordAuthenticationError(error);
    }
  },
};

const silentLogger: Logger = Object.assign(() => undefined, {
  error: () => undefined,
  trace: () => undefined,
  enabled: false,
  newScope: (): Logger => silentLogger,
});

const silentComponentLogger: ComponentLogger = { forComponent: () => silentLogger };

/** libp2p-noise only asks the upgrader for stream muxers, and not at all with skipStreamMuxerNegotiation. */
const noMuxerUpgrader = { getStreamMuxers: () => new Map() } as Pick<Upgrader, 'getStreamMuxers'> as Upgrader;

// ---------------------------------------------------------------------------------------------
// Duplex ownership

const STOPPED = Symbol('stopped');

/**
 * Owns the raw ByteDuplex for the channel's lifetime: presents it to libp2p-noise as the async
 * generator duplex it expects, and can stop both directions at any time, even while a read of the
 * raw source or of the outbound plaintext is pending (which an async generator's `return()` cannot).
 */
class DuplexGuard {
  readonly noiseStream: NoiseStream;
  /** Settles when the raw sink has finished (flushed, failed or stopped). */
  readonly sinkDone: Promise<void>;
  /** Set by the channel to learn about a failing raw sink. */
  onSinkError: ((error: unknown) => void) | undefined;
  private stopped = false;
  private sinkStarted = false;
  private stopError: Error | undefined;
  private readonly stopWaiters = new Set<() => void>();
  private readonly rawSource: AsyncIterator<Uint8Array>;
  private resolveSinkDone: () => void = () => undefined;

  /** The raw duplex's zero-copy chunk allocator, or a plain allocation. */
  readonly allocateChunk: (length: number) => Uint8Array;

  constructor(private readonly raw: ByteDuplex) {
    this.allocateChunk = raw.allocateChunk ?? ((length) => Buffer.allocUnsafe(length));
    this.rawSource = raw.source[Symbol.asyncIterator]();
    this.sinkDone = new Promise((resolve) => {
      this.resolveSinkDone = resolve;
    });
    this.noiseStream = {
      source: this.guardedSource(),
      sink: (source) => this.runSink(source),
    };
  }

  /**
   * Ends the raw sink and stops reading the raw source. Idempotent. With `error` the raw sink's
   * source throws it instead of ending (a reliable stream then resets rather than closes gracefully).
   */
  stop(error?: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopError = error;
    for (const wake of this.stopWaiters) wake();
    this.stopWaiters.clear();
    // Released before libp2p-noise attached to it: still end the raw sink, with nothing in it.
    if (!this.sinkStarted) this.runSink((async function* () {})()).catch(() => undefined);
    const iterator = this.rawSource;
    void Promise.resolve()
      .then(() => iterator.return?.())
      .catch(() => undefined);
  }

  private async *guardedSource(): AsyncGenerator<Uint8Array> {
    for (;;) {
      const result = await this.untilStopped(this.rawSource.next());
      if (result === STOPPED || result.done === true) return;
      yield result.value;
    }
  }

  private async runSink(source: AsyncGenerator<Uint8Array | Uint8ArrayList>): Promise<void> {
    this.sinkStarted = true;
    const iterator = source[Symbol.asyncIterator]();
    const guard = this;
    async function* outbound(): AsyncGenerator<Uint8Array> {
      for (;;) {
        const result = await guard.untilStopped(iterator.next());
        if (result === STOPPED && guard.stopError !== undefined) throw guard.stopError;
        if (result === STOPPED || result.done === true) return;
        const chunk = result.value;
        yield chunk instanceof Uint8Array ? chunk : chunk.subarray();
      }
    }
    try {
      await this.raw.sink(outbound());
    } catch (error) {
      if (!this.stopped) this.onSinkError?.(error);
      throw error;
    } finally {
      this.resolveSinkDone();
    }
  }

  /** Resolves like `promise`, or with STOPPED as soon as the guard is stopped. */
  private untilStopped<T>(promise: Promise<T>): Promise<T | typeof STOPPED> {
    if (this.stopped) {
      promise.catch(() => undefined);
      return Promise.resolve(STOPPED);
    }
    return new Promise((resolve, reject) => {
      const wake = (): void => resolve(STOPPED);
      this.stopWaiters.add(wake);
      promise.then(
        (value) => {
          this.stopWaiters.delete(wake);
          resolve(value);
        },
        (error: unknown) => {
          this.stopWaiters.delete(wake);
          reject(error);
        },
      );
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Outbound buffer

/**
 * FIFO of plaintext records with a byte bound: `push` waits while the bound is reached, which is
 * how `send` feels backpressure from the Noise pipeline and the raw sink.
 */
class RecordQueue {
  private items: Uint8Array[] = [];
  private head = 0;
  private bytes = 0;
  private ended = false;
  private failure: Error | undefined;
  private wakeConsumer: (() => void) | undefined;
  private spaceWaiters: Array<() => void> = [];

  constructor(private readonly capacityBytes: number) {}

  async push(record: Uint8Array, options: { unbounded?: boolean } = {}): Promise<void> {
    while (this.failure === undefined && options.unbounded !== true && this.bytes > 0 && this.bytes + record.byteLength > this.capacityBytes) {
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.ended) throw new Error('record queue already ended');
    this.items.push(record);
    this.bytes += record.byteLength;
    this.notifyConsumer();
  }

  /** No more records: the consumer ends after taking the queued ones. */
  end(): void {
    this.ended = true;
    this.notifyConsumer();
  }

  /** Drops queued records; pending and future pushes reject with `error`; the consumer ends. */
  fail(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    this.notifySpace();
    this.notifyConsumer();
  }

  /**
   * Yields the queued bytes as Noise records: a large record as is, consecutive small ones
   * coalesced up to `maxRecordBytes` (fewer, fuller Noise messages for bursts of small messages).
   */
  async *records(maxRecordBytes: number): AsyncGenerator<Uint8Array> {
    for (;;) {
      if (this.failure !== undefined) return;
      const first = this.take();
      if (first !== undefined) {
        let next = this.items[this.head];
        if (next === undefined || first.byteLength + next.byteLength > maxRecordBytes) {
          yield first;
          continue;
        }
        const parts = [first];
        let size = first.byteLength;
        while (next !== undefined && size + next.byteLength <= maxRecordBytes) {
          parts.push(this.take() ?? EMPTY);
          size += next.byteLength;
          next = this.items[this.head];
        }
        yield Buffer.concat(parts, size);
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
    }
  }

  private take(): Uint8Array | undefined {
    const record = this.items[this.head];
    if (record === undefined) return undefined;
    this.items[this.head] = EMPTY;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    this.bytes -= record.byteLength;
    this.notifySpace();
    return record;
  }

  private notifyConsumer(): void {
    const wake = this.wakeConsumer;
    this.wakeConsumer = undefined;
    wake?.();
  }

  private notifySpace(): void {
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const wake of waiters) wake();
  }
}

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// The established channel

/** Bytes of a Noise message's length prefix (u16be) on the wire. */
const NOISE_LENGTH_BYTES = 2;
/** ChaCha20-Poly1305 tag bytes at the end of every Noise transport message. */
const NOISE_TAG_BYTES = 16;

class NoiseMessageChannel implements SecureChannel {
  readonly kind = 'relay' as const;
  readonly localIdentity: string;
  private readonly messageListeners: Array<(message: string) => void> = [];
  private readonly closeListeners: Array<(error?: Error) => void> = [];
  private readonly outbound: RecordQueue;
  private readonly maxMessageBytes: number;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly cipher: NoiseCipherPair;
  private readonly allocateChunk: (length: number) => Uint8Array;
  private sendChain: Promise<void> = Promise.resolve();
  private isClosed = false;
  private closeError: Error | undefined;
  private wakeReader: (() => void) | undefined;
  /** Receive-side backpressure: the read loop waits before delivering (and so stops pulling records). */
  private receivePaused = false;
  // Receive side: the plaintext framing parser's state (see acceptPlaintext).
  /** Header bytes gathered so far when a header straddles records (4, or 8 for an abort frame). */
  private readonly header = new Uint8Array(2 * HEADER_BYTES);
  private headerFill = 0;
  /** The message (or abort reason) being reassembled from several records, and how much of it is in. */
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private bodyIsAbortReason = false;

  constructor(
    private readonly transport: SecureTransport,
    private readonly guard: DuplexGuard,
    options: NoiseChannelOptions,
    readonly remoteIdentity: string,
  ) {
    this.localIdentity = options.identity.publicIdentity;
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.outbound = new RecordQueue(options.sendBufferBytes ?? DEFAULT_SEND_BUFFER_BYTES);
    this.cipher = transport.cipher;
    this.allocateChunk = guard.allocateChunk;
    guard.onSinkError = (error) =>
      this.fail(new NoiseChannelError('stream-failed', `secure channel failed: the underlying stream failed: ${messageOf(error)}`, { cause: error }));
    this.transport.sink(this.encryptedRecords()).catch((error: unknown) =>
      this.fail(new NoiseChannelError('stream-failed', `secure channel failed: ${messageOf(error)}`, { cause: error })),
    );
    void this.readLoop();
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(message: string): Promise<void> {
    if (this.isClosed) return Promise.reject(this.closedError());
    const length = Buffer.byteLength(message, 'utf8');
    if (length > this.maxMessageBytes) {
      return Promise.reject(
        new NoiseChannelError('message-too-large', `message of ${length} bytes exceeds the maximum of ${this.maxMessageBytes} bytes`),
      );
    }
    // Header and UTF-8 body in one buffer, encoded straight from the string: one copy.
    const framed = Buffer.allocUnsafe(HEADER_BYTES + length);
    framed.writeUInt32BE(length, 0);
    framed.write(message, HEADER_BYTES, length, 'utf8');
    const sent = this.sendChain.then(() => this.enqueueMessage(framed));
    this.sendChain = sent.catch(() => undefined);
    return sent;
  }

  onMessage(listener: (message: string) => void): void {
    this.messageListeners.push(listener);
    this.notifyReader();
  }

  onClose(listener: (error?: Error) => void): void {
    if (this.isClosed) queueMicrotask(() => listener(this.closeError));
    else this.closeListeners.push(listener);
  }

  /**
   * Stops delivering messages: the read loop waits, so it stops pulling records from the duplex and
   * the reliable stream's receive window closes on the sender (no ack for what does not fit).
   */
  pauseReceiving(): void {
    this.receivePaused = true;
  }

  resumeReceiving(): void {
    this.receivePaused = false;
    this.notifyReader();
  }

  /**
   * Clean close: every message whose `send` was called before is still written (bounded by
   * CLOSE_FLUSH_TIMEOUT_MS), then the sink ends and reading stops. Close listeners run at once.
   */
  close(_reason?: string): void {
    if (this.isClosed) return;
    this.markClosed(undefined);
    this.endAfterPendingMessage();
  }

  /**
   * Fails the channel with `error`; when `peerNotice` is given it is sent to the peer in an abort
   * frame (after any message being written, so frames stay aligned) before the sink ends.
   */
  abort(error: Error, peerNotice?: string): void {
    this.fail(error, peerNotice);
  }

  private fail(error: Error, peerNotice?: string): void {
    if (this.isClosed) return;
    this.markClosed(error);
    if (peerNotice === undefined) {
      this.outbound.fail(error);
      this.guard.stop(error);
      return;
    }
    const frame = encodeAbortFrame(peerNotice);
    this.sendChain = this.sendChain.then(() => this.outbound.push(frame, { unbounded: true })).catch(() => undefined);
    this.endAfterPendingMessage();
  }

  /** Lets the message being written finish (frame alignment), ends the sink, then stops the duplex. */
  private endAfterPendingMessage(): void {
    void this.sendChain.then(() => this.outbound.end());
    const timer = setTimeout(() => {
      const error = new NoiseChannelError('stream-failed', `secure channel did not flush within ${CLOSE_FLUSH_TIMEOUT_MS} ms of closing`);
      this.outbound.fail(error);
      this.guard.stop(error);
    }, CLOSE_FLUSH_TIMEOUT_MS);
    timer.unref();
    void this.guard.sinkDone.then(() => {
      clearTimeout(timer);
      this.guard.stop();
    });
  }

  private markClosed(error: Error | undefined): void {
    this.isClosed = true;
    this.closeError = error;
    this.notifyReader();
    for (const listener of this.closeListeners.splice(0)) listener(error);
  }

  private closedError(): Error {
    return new Error(this.closeError ? `transport closed: ${this.closeError.message}` : 'transport closed', { cause: this.closeError });
  }

  /**
   * Sends called while open are written even if a clean close follows; a failure drops them.
   * `framed` is the header and body; it is cut into records of at most 60 KiB (views, no copy).
   */
  private async enqueueMessage(framed: Uint8Array): Promise<void> {
    if (this.closeError !== undefined) throw this.closedError();
    for (let offset = 0; offset < framed.byteLength; offset += MAX_RECORD_PLAINTEXT_BYTES) {
      await this.outbound.push(framed.subarray(offset, Math.min(offset + MAX_RECORD_PLAINTEXT_BYTES, framed.byteLength)));
    }
  }

  /** The outbound records as Noise transport messages: `u16be length, ciphertext+tag`, one chunk each. */
  private async *encryptedRecords(): AsyncGenerator<Uint8Array> {
    for await (const record of this.outbound.records(MAX_RECORD_PLAINTEXT_BYTES)) {
      // A list in, a list out: libp2p-noise's node:crypto path then returns [ciphertext, tag]
      // without concatenating them (small records take its WebAssembly path and return one array).
      const sealed = this.cipher.encrypt(new Uint8ArrayList(record));
      const length = sealed.byteLength;
      const message = this.allocateChunk(NOISE_LENGTH_BYTES + length);
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
      yield message;
    }
  }

  private async readLoop(): Promise<void> {
    // Bytes of a Noise message split across chunks (never the case between two endpoints of this
    // module, whose chunks are whole Noise messages, but the duplex does not promise it).
    const pending = new Uint8ArrayList();
    try {
      for await (const chunk of this.transport.source) {
        if (this.isClosed) return;
        if (pending.byteLength === 0 && chunk instanceof Uint8Array) {
          // Whole Noise messages straight from the chunk, no copy; a partial tail goes to `pending`.
          let offset = 0;
          while (chunk.byteLength - offset >= NOISE_LENGTH_BYTES) {
            const length = (chunk[offset]! << 8) | chunk[offset + 1]!;
            const end = offset + NOISE_LENGTH_BYTES + length;
            if (end > chunk.byteLength) break;
            if (!(await this.openRecord(chunk.subarray(offset + NOISE_LENGTH_BYTES, end)))) return;
            offset = end;
          }
          if (offset < chunk.byteLength) pending.append(chunk.subarray(offset));
          continue;
        }
        pending.append(chunk);
        while (pending.byteLength >= NOISE_LENGTH_BYTES) {
          const length = pending.getUint16(0);
          if (pending.byteLength < NOISE_LENGTH_BYTES + length) break;
          const sealed = pending.subarray(NOISE_LENGTH_BYTES, NOISE_LENGTH_BYTES + length);
          pending.consume(NOISE_LENGTH_BYTES + length);
          if (!(await this.openRecord(sealed))) return;
        }
      }
      if (this.isClosed) return;
      const partial = pending.byteLength + this.headerFill + this.bodyFill;
      if (partial > 0) {
        this.fail(new NoiseChannelError('protocol-error', `secure channel ended in the middle of a message (${partial} bytes of it received)`));
      } else {
        this.close('peer ended the stream');
      }
    } catch (error) {
      if (this.isClosed) return;
      if (hasInChain(error, (e) => e instanceof RecordAuthenticationError || e.message.includes(RECORD_AUTHENTICATION_FAILED))) {
        this.fail(
          new NoiseChannelError(
            'authentication-failed',
            'Noise authentication failed: a received record did not decrypt (corrupted or tampered ciphertext); secure channel closed',
            { cause: error },
          ),
        );
      } else {
        this.fail(new NoiseChannelError('stream-failed', `secure channel failed: ${messageOf(error)}`, { cause: error }));
      }
    }
  }

  /** Decrypts one Noise transport message (ciphertext+tag) and parses its plaintext; false once closed. */
  private openRecord(sealed: Uint8Array): Promise<boolean> | boolean {
    if (sealed.byteLength < NOISE_TAG_BYTES) throw new RecordAuthenticationError(new Error('Noise message shorter than its tag'));
    // Like libp2p-noise's decryptStream: small messages are decrypted in place (WebAssembly path).
    const plaintext = this.cipher.decrypt(sealed, sealed.subarray(0, sealed.byteLength - NOISE_TAG_BYTES));
    return this.acceptPlaintext(plaintext instanceof Uint8Array ? plaintext : plaintext.subarray());
  }

  /**
   * Parses one record's plaintext: `length:u32be body` messages (a body inside one record is
   * delivered as a view, one spanning records is gathered into a buffer of its declared length) and
   * the abort frame. Delivers every message it completes; false once the channel is closed.
   */
  private async acceptPlaintext(record: Uint8Array): Promise<boolean> {
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
        if (!(await this.deliver(body))) return false;
        continue;
      }
      // The header (4 bytes; 8 for the abort frame, whose reason length follows its marker): read in
      // place when the record holds all of it, else gathered across records.
      let declared: number;
      let reasonBytes = 0;
      const available = record.byteLength - offset;
      if (this.headerFill === 0 && available >= HEADER_BYTES && (readU32(record, offset) !== ABORT_MARKER || available >= 2 * HEADER_BYTES)) {
        declared = readU32(record, offset);
        offset += HEADER_BYTES;
        if (declared === ABORT_MARKER) {
          reasonBytes = readU32(record, offset);
          offset += HEADER_BYTES;
        }
      } else {
        for (;;) {
          const need = this.headerFill >= HEADER_BYTES && readU32(this.header, 0) === ABORT_MARKER ? 2 * HEADER_BYTES : HEADER_BYTES;
          if (this.headerFill === need) break;
          if (offset === record.byteLength) return true;
          const take = Math.min(need - this.headerFill, record.byteLength - offset);
          this.header.set(record.subarray(offset, offset + take), this.headerFill);
          this.headerFill += take;
          offset += take;
        }
        declared = readU32(this.header, 0);
        if (declared === ABORT_MARKER) reasonBytes = readU32(this.header, HEADER_BYTES);
        this.headerFill = 0;
      }
      if (declared === ABORT_MARKER) {
        if (reasonBytes > MAX_ABORT_REASON_BYTES) {
          this.fail(new NoiseChannelError('protocol-error', `peer sent an abort frame with a ${reasonBytes}-byte reason (maximum ${MAX_ABORT_REASON_BYTES}); secure channel closed`));
          return false;
        }
        if (record.byteLength - offset >= reasonBytes) return this.receiveAbort(record.subarray(offset, offset + reasonBytes));
        this.body = new Uint8Array(reasonBytes);
        this.bodyFill = 0;
        this.bodyIsAbortReason = true;
        continue;
      }
      if (declared > this.maxMessageBytes) {
        this.fail(
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
        if (!(await this.deliver(body))) return false;
        continue;
      }
      this.body = Buffer.allocUnsafe(declared);
      this.bodyFill = 0;
      this.bodyIsAbortReason = false;
    }
    return true;
  }

  /** Hands one complete message to the listeners (waiting for the first one, and while paused); false once closed. */
  private async deliver(body: Uint8Array): Promise<boolean> {
    let text: string;
    try {
      text = this.decoder.decode(body);
    } catch (error) {
      this.fail(new NoiseChannelError('protocol-error', 'peer sent a message that is not valid UTF-8; secure channel closed', { cause: error }), 'message is not valid UTF-8');
      return false;
    }
    while ((this.messageListeners.length === 0 || this.receivePaused) && !this.isClosed) {
      await new Promise<void>((resolve) => {
        this.wakeReader = resolve;
      });
    }
    if (this.isClosed) return false;
    for (const listener of this.messageListeners) {
      try {
        listener(text);
      } catch (error) {
        this.fail(new Error(`message listener threw: ${messageOf(error)}`, { cause: error }));
        return false;
      }
    }
    return true;
  }

  private receiveAbort(reason: Uint8Array): boolean {
    this.fail(new NoiseChannelError('peer-aborted', `secure channel closed by the peer: ${new TextDecoder().decode(reason)}`));
    return false;
  }

  private notifyReader(): void {
    const wake = this.wakeReader;
    this.wakeReader = undefined;
    wake?.();
  }
}

function readU32(bytes: Uint8Array, offset: number): number {
  return bytes[offset]! * 0x100_0000 + ((bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!);
}

function encodeAbortFrame(reason: string): Uint8Array {
  let text = Buffer.from(reason, 'utf8');
  if (text.byteLength > MAX_ABORT_REASON_BYTES) text = text.subarray(0, MAX_ABORT_REASON_BYTES);
  const frame = new Uint8Array(2 * HEADER_BYTES + text.byteLength);
  const view = new DataView(frame.buffer);
  view.setUint32(0, ABORT_MARKER);
  view.setUint32(HEADER_BYTES, text.byteLength);
  frame.set(text, 2 * HEADER_BYTES);
  return frame;
}

function hasInChain(error: unknown, test: (error: Error) => boolean): boolean {
  for (let current: unknown = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    if (test(current)) return true;
  }
  return false;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
