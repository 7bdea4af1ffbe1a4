import { encodeCodexRelayFrame, type CodexRelayBody } from '../codex-relay-frame/codex-relay-frame.js';
import type { HybridTransport } from '../noise-hybrid/hybrid-transport.js';
import { HybridNoiseError } from '../noise-hybrid/hybrid-noise-error.js';
import { ReceiveGate } from '../transport/receive-gate.js';
import type { MessageTransport } from '../transport/message-transport.js';
import { CodexChannelError } from './codex-channel-error.js';
import { CODEX_PROTOCOL_ERROR_RESET_REASON } from './codex-channel-limits.js';
import { MessageReassembler, messageRecords } from './message-records.js';
import { SeqReorderBuffer } from './seq-reorder-buffer.js';

/** Bytes queued on the socket past which `send` waits for ws to write before resolving. */
const SEND_BUFFER_BYTES = 4 * 1024 * 1024;

/** The socket under a codex stream, as the record layer sees it (the stream does not own it on the executor side). */
export interface CodexFramePort {
  /** Whether frames can still be sent. */
  readonly open: boolean;
  /** Bytes queued on the socket, not yet written. */
  readonly bufferedAmount: number;
  /** Sends one encoded frame; resolves once ws wrote it, rejects when it could not. */
  send(frame: Uint8Array): Promise<void>;
  /** Receive-side backpressure (the client pauses its own socket; a shared executor socket is never paused for one stream). */
  pause(): void;
  resume(): void;
}

/** Who is at the other end of a stream (named in errors). */
export type CodexPeer = 'executor' | 'client';

/**
 * The one record layer of a codex Noise stream, for both roles: JSON-RPC messages framed as in
 * protocol notes §8 (`message-records.ts`), each record sealed with the hybrid transport and sent
 * as one Data frame with the next seq (from 0); received Data frames are put back in seq order
 * (`SeqReorderBuffer`), opened strictly in order, and reassembled. A Reset on the stream, a record
 * that fails authentication, a broken frame order or a frame missing too long (lost) closes the
 * channel with a CodexChannelError (all but the first after resetting the stream). The initiator (`CodexNoiseChannel`) owns its socket;
 * the responder (`CodexResponderChannel`) shares the executor's one socket with other streams.
 */
export abstract class CodexRecordChannel implements MessageTransport {
  readonly kind = 'relay' as const;
  private readonly messageListeners: Array<(message: string) => void> = [];
  private readonly closeListeners: Array<(error?: Error) => void> = [];
  /** A frame missing too long (lost: 0.169.0 resends nothing) breaks the stream, so the client recovers on a new one. */
  private readonly reorder = new SeqReorderBuffer({ onFrameLost: (error) => this.breakStream(error) });
  private readonly reassembler: MessageReassembler;
  private readonly gate: ReceiveGate;
  private sendSeq = 0;
  private isClosed = false;
  private closeError: Error | undefined;

  protected constructor(
    private readonly port: CodexFramePort,
    readonly streamId: string,
    private readonly transport: HybridTransport,
    maxMessageBytes: number,
    private readonly peer: CodexPeer,
    /** The reset reason sent when this side ends the stream. */
    private readonly closeReason: string,
  ) {
    this.reassembler = new MessageReassembler(maxMessageBytes);
    this.gate = new ReceiveGate((message) => {
      for (const listener of this.messageListeners) listener(message);
    }, port);
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** The handshake hash (channel binding). */
  get handshakeHash(): Buffer {
    return this.transport.handshakeHash;
  }

  async send(message: string): Promise<void> {
    if (this.isClosed || !this.port.open) throw new Error('transport closed');
    const records = messageRecords(message);
    let last: Promise<void> = Promise.resolve();
    for (const record of records) {
      last = this.port.send(encodeCodexRelayFrame({ streamId: this.streamId, body: { type: 'data', seq: this.sendSeq++, payload: this.transport.encrypt(record) } }));
    }
    // Backpressure: only a full socket buffer makes the writer wait for ws.
    if (this.port.bufferedAmount > SEND_BUFFER_BYTES) await last;
    else last.catch(() => undefined);
  }

  onMessage(listener: (message: string) => void): void {
    this.messageListeners.push(listener);
  }

  onClose(listener: (error?: Error) => void): void {
    if (this.isClosed) queueMicrotask(() => listener(this.closeError));
    else this.closeListeners.push(listener);
  }

  pauseReceiving(): void {
    this.gate.pause();
  }

  resumeReceiving(): void {
    this.gate.resume();
  }

  /** Ends the stream (a Reset tells the peer). */
  close(): void {
    if (this.isClosed) return;
    this.sendReset(this.closeReason);
    this.finish(undefined);
  }

  /** A frame body of this stream (the caller decoded the frame and checked its stream id). */
  receiveBody(body: CodexRelayBody): void {
    if (this.isClosed) return;
    if (body.type === 'reset') {
      this.finish(new CodexChannelError('reset', `the stream was reset: ${body.reason}`, body.reason));
      return;
    }
    if (body.type !== 'data') return;
    try {
      for (const payload of this.reorder.push(body.seq, body.payload)) {
        const plaintext = this.transport.decrypt(payload);
        for (const message of this.reassembler.push(plaintext)) this.gate.accept(message);
      }
    } catch (error) {
      this.breakStream(
        error instanceof CodexChannelError
          ? error
          : new CodexChannelError('decrypt-failed', `a record from the ${this.peer} failed: ${error instanceof HybridNoiseError ? error.message : String(error)}`),
      );
    }
  }

  /** The stream cannot go on (a bad record, a broken or stalled frame order): reset it towards the peer and end. */
  private breakStream(failure: CodexChannelError): void {
    if (this.isClosed) return;
    this.sendReset(CODEX_PROTOCOL_ERROR_RESET_REASON);
    this.finish(failure);
  }

  /** Ends the channel without a Reset (the socket under it is gone, or the peer reset the stream). */
  protected finish(error: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.reorder.close();
    this.closeError ??= error;
    this.finished();
    for (const listener of this.closeListeners.splice(0)) listener(this.closeError);
  }

  /** Keeps the first error seen (a socket error before its close). */
  protected noteError(error: Error): void {
    this.closeError ??= error;
  }

  /** What the role does when the channel ends (after a final Reset went out). */
  protected abstract finished(): void;

  protected sendReset(reason: string): void {
    if (!this.port.open) return;
    this.port.send(encodeCodexRelayFrame({ streamId: this.streamId, body: { type: 'reset', reason } })).catch(() => undefined);
  }
}
