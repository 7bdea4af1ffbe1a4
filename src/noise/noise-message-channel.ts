/**
 * The established Noise channel: whole messages framed (plaintext-framing.ts), cut into records,
 * sealed into Noise transport messages (transport-message.ts) on the way out, and opened, parsed and
 * delivered in order on the way in. A record that fails authentication closes the channel with an
 * `authentication-failed` error; a message is delivered only when all of its records authenticated.
 */
import type { MessageTransport } from '../transport/message-transport.js';
import { TransportListeners } from '../transport/transport-listeners.js';
import { DEFAULT_SEND_BUFFER_BYTES, type NoiseChannelOptions } from './channel-options.js';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../transport/message-transport.js';
import type { DuplexGuard } from './duplex-guard.js';
import { classifyReadError, messageOf } from './error-classification.js';
import { NoiseChannelError } from './noise-channel-error.js';
import { encodeAbortFrame, encodeBinaryFrameHeader, encodeMessageFrame, MAX_RECORD_PLAINTEXT_BYTES, PlaintextFrameParser } from './plaintext-framing.js';
import { RecordQueue } from './record-queue.js';
import type { NoiseCipherPair, SecureTransport } from './secure-connection-hook.js';
import { openTransportMessage, sealTransportMessage, TransportMessageSplitter } from './transport-message.js';

/** How long `close()` lets already accepted messages flush before the duplex is cut. */
export const CLOSE_FLUSH_TIMEOUT_MS = 5_000;

/** An established Noise channel: a MessageTransport that knows who is at the other end. */
export interface SecureChannel extends MessageTransport {
  readonly kind: 'relay';
  /** Public identity of this endpoint. */
  readonly localIdentity: string;
  /** Public identity the peer proved in the handshake. */
  readonly remoteIdentity: string;
}

export class NoiseMessageChannel implements SecureChannel {
  readonly kind = 'relay' as const;
  readonly localIdentity: string;
  private readonly listeners = new TransportListeners();
  private readonly outbound: RecordQueue;
  private readonly maxMessageBytes: number;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly cipher: NoiseCipherPair;
  private readonly allocateChunk: (length: number) => Uint8Array;
  private readonly parser: PlaintextFrameParser;
  private sendChain: Promise<void> = Promise.resolve();
  private wakeReader: (() => void) | undefined;
  /** Receive-side backpressure: the read loop waits before delivering (and so stops pulling records). */
  private receivePaused = false;

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
    this.parser = new PlaintextFrameParser(this.maxMessageBytes, {
      deliver: (body, binary) => this.deliver(body, binary),
      fail: (error, peerNotice) => this.fail(error, peerNotice),
    });
    guard.onSinkError = (error) =>
      this.fail(new NoiseChannelError('stream-failed', `secure channel failed: the underlying stream failed: ${messageOf(error)}`, { cause: error }));
    this.transport.sink(this.encryptedRecords()).catch((error: unknown) =>
      this.fail(new NoiseChannelError('stream-failed', `secure channel failed: ${messageOf(error)}`, { cause: error })),
    );
    void this.readLoop();
  }

  get closed(): boolean {
    return this.listeners.closed;
  }

  send(message: string): Promise<void> {
    if (this.listeners.closed) return Promise.reject(this.closedError());
    const length = Buffer.byteLength(message, 'utf8');
    if (length > this.maxMessageBytes) {
      return Promise.reject(
        new NoiseChannelError('message-too-large', `message of ${length} bytes exceeds the maximum of ${this.maxMessageBytes} bytes`),
      );
    }
    const framed = encodeMessageFrame(message, length);
    const sent = this.sendChain.then(() => this.enqueueMessage(framed));
    this.sendChain = sent.catch(() => undefined);
    return sent;
  }

  /**
   * One binary message (the `binaryOutput` extension) in a binary frame: its 8-byte header, then
   * `message` itself (or its parts, in order), packed into records as they are (views, no copy).
   * Ordered with `send`.
   */
  sendBinary(message: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (this.listeners.closed) return Promise.reject(this.closedError());
    const parts = message instanceof Uint8Array ? [message] : message;
    let byteLength = 0;
    for (const part of parts) byteLength += part.byteLength;
    if (byteLength > this.maxMessageBytes) {
      return Promise.reject(
        new NoiseChannelError('message-too-large', `message of ${byteLength} bytes exceeds the maximum of ${this.maxMessageBytes} bytes`),
      );
    }
    const framed = [encodeBinaryFrameHeader(byteLength), ...parts];
    const sent = this.sendChain.then(() => this.enqueueMessage(framed));
    this.sendChain = sent.catch(() => undefined);
    return sent;
  }

  onMessage(listener: (message: string) => void): void {
    this.listeners.onMessage(listener);
    this.notifyReader();
  }

  /** Binary messages; one arriving while no binary listener is set fails the channel (a protocol error). */
  onBinaryMessage(listener: (message: Uint8Array) => void): void {
    this.listeners.onBinaryMessage(listener);
  }

  onClose(listener: (error?: Error) => void): void {
    this.listeners.onClose(listener);
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
    if (this.listeners.closed) return;
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
    if (this.listeners.closed) return;
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
    this.listeners.close(error);
    this.notifyReader();
  }

  private closedError(): Error {
    return new Error(this.listeners.error ? `transport closed: ${this.listeners.error.message}` : 'transport closed', { cause: this.listeners.error });
  }

  /**
   * Sends called while open are written even if a clean close follows; a failure drops them.
   * `framed` is the header and body (one buffer, or its parts), queued as is: the record queue
   * cuts the queued bytes into records of MAX_RECORD_PLAINTEXT_BYTES (views, no copy).
   */
  private async enqueueMessage(framed: Uint8Array | readonly Uint8Array[]): Promise<void> {
    if (this.listeners.error !== undefined) throw this.closedError();
    await this.outbound.push(framed);
  }

  /** The outbound records as Noise transport messages, one chunk each. */
  private async *encryptedRecords(): AsyncGenerator<Uint8Array> {
    for await (const record of this.outbound.records(MAX_RECORD_PLAINTEXT_BYTES)) {
      yield sealTransportMessage(this.cipher, record, this.allocateChunk);
    }
  }

  private async readLoop(): Promise<void> {
    const splitter = new TransportMessageSplitter();
    try {
      for await (const chunk of this.transport.source) {
        if (this.listeners.closed) return;
        for (const sealed of splitter.split(chunk)) {
          if (!(await this.parser.accept(openTransportMessage(this.cipher, sealed)))) return;
        }
      }
      if (this.listeners.closed) return;
      const partial = splitter.partialBytes + this.parser.partialBytes;
      if (partial > 0) {
        this.fail(new NoiseChannelError('protocol-error', `secure channel ended in the middle of a message (${partial} bytes of it received)`));
      } else {
        this.close('peer ended the stream');
      }
    } catch (error) {
      if (this.listeners.closed) return;
      this.fail(classifyReadError(error));
    }
  }

  /** Hands one complete message to the listeners (waiting for the first one, and while paused); false once closed. */
  private async deliver(body: Uint8Array, binary: boolean): Promise<boolean> {
    if (binary) return this.deliverBinary(body);
    let text: string;
    try {
      text = this.decoder.decode(body);
    } catch (error) {
      this.fail(new NoiseChannelError('protocol-error', 'peer sent a message that is not valid UTF-8; secure channel closed', { cause: error }), 'message is not valid UTF-8');
      return false;
    }
    while ((!this.listeners.hasMessageListener || this.receivePaused) && !this.listeners.closed) {
      await new Promise<void>((resolve) => {
        this.wakeReader = resolve;
      });
    }
    if (this.listeners.closed) return false;
    try {
      this.listeners.emitMessage(text);
    } catch (error) {
      this.fail(new Error(`message listener threw: ${messageOf(error)}`, { cause: error }));
      return false;
    }
    return true;
  }

  private async deliverBinary(body: Uint8Array): Promise<boolean> {
    if (!this.listeners.hasBinaryListener) {
      this.fail(new NoiseChannelError('protocol-error', 'peer sent a binary message on a channel that takes none; secure channel closed'), 'binary message not accepted');
      return false;
    }
    while (this.receivePaused && !this.listeners.closed) {
      await new Promise<void>((resolve) => {
        this.wakeReader = resolve;
      });
    }
    if (this.listeners.closed) return false;
    // A view of the record's plaintext (decrypted in place into the received frame, never reused).
    const message = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    try {
      this.listeners.emitBinary(message);
    } catch (error) {
      this.fail(new Error(`message listener threw: ${messageOf(error)}`, { cause: error }));
      return false;
    }
    return true;
  }

  private notifyReader(): void {
    const wake = this.wakeReader;
    this.wakeReader = undefined;
    wake?.();
  }
}
