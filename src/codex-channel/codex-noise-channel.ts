import WebSocket from 'ws';
import { decodeCodexRelayFrame, encodeCodexRelayFrame } from '../codex-relay-frame/codex-relay-frame.js';
import type { HybridTransport } from '../noise-hybrid/hybrid-transport.js';
import { HybridNoiseError } from '../noise-hybrid/hybrid-noise-error.js';
import { ReceiveGate } from '../transport/receive-gate.js';
import type { MessageTransport } from '../transport/message-transport.js';
import { CodexChannelError } from './codex-channel-error.js';
import { CODEX_CLIENT_CLOSED_RESET_REASON, CODEX_PROTOCOL_ERROR_RESET_REASON } from './codex-channel-limits.js';
import { MessageReassembler, messageRecords } from './message-records.js';
import { SeqReorderBuffer } from './seq-reorder-buffer.js';

/** Bytes queued on the socket past which `send` waits for ws to write before resolving. */
const SEND_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * A MessageTransport over one established codex Noise stream: JSON-RPC messages framed as in
 * protocol notes §8 (`message-records.ts`), each record sealed with the hybrid transport and sent
 * as one Data frame with the next seq (from 0); received Data frames are put back in seq order
 * (`SeqReorderBuffer`), opened strictly in order, and reassembled. A Reset on the stream, a record
 * that fails authentication or a broken frame order closes the channel with a CodexChannelError
 * (the latter two after resetting the stream). Frames of other streams on the socket are ignored.
 */
export class CodexNoiseChannel implements MessageTransport {
  readonly kind = 'relay' as const;
  private readonly messageListeners: Array<(message: string) => void> = [];
  private readonly closeListeners: Array<(error?: Error) => void> = [];
  private readonly reorder = new SeqReorderBuffer();
  private readonly reassembler: MessageReassembler;
  private readonly gate: ReceiveGate;
  private sendSeq = 0;
  private isClosed = false;
  private closeError: Error | undefined;

  constructor(
    private readonly socket: WebSocket,
    readonly streamId: string,
    private readonly transport: HybridTransport,
    maxMessageBytes: number,
  ) {
    this.reassembler = new MessageReassembler(maxMessageBytes);
    this.gate = new ReceiveGate((message) => {
      for (const listener of this.messageListeners) listener(message);
    }, socket);
    socket.on('message', (data, isBinary) => {
      if (isBinary && !this.isClosed) this.receive(data as Buffer);
    });
    socket.on('close', (code) => this.finish(code === 1000 || code === 1005 ? undefined : new CodexChannelError('socket-closed', `the rendezvous socket closed (code ${code})`)));
    socket.on('error', (error) => {
      this.closeError ??= new CodexChannelError('socket-closed', `the rendezvous socket failed: ${error.message}`);
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** The handshake hash (channel binding). */
  get handshakeHash(): Buffer {
    return this.transport.handshakeHash;
  }

  async send(message: string): Promise<void> {
    if (this.isClosed || this.socket.readyState !== WebSocket.OPEN) throw new Error('transport closed');
    const records = messageRecords(message);
    let last: Promise<void> = Promise.resolve();
    for (const record of records) {
      const frame = encodeCodexRelayFrame({ streamId: this.streamId, body: { type: 'data', seq: this.sendSeq++, payload: this.transport.encrypt(record) } });
      last = new Promise((resolve, reject) => this.socket.send(frame, { binary: true }, (error) => (error ? reject(error) : resolve())));
    }
    // Backpressure: only a full socket buffer makes the writer wait for ws.
    if (this.socket.bufferedAmount > SEND_BUFFER_BYTES) await last;
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

  /** Ends the stream (a Reset tells the executor) and closes the socket. */
  close(): void {
    if (this.isClosed) return;
    this.sendReset(CODEX_CLIENT_CLOSED_RESET_REASON);
    this.finish(undefined);
  }

  private receive(data: Buffer): void {
    const decoded = decodeCodexRelayFrame(data);
    if (!decoded.ok || decoded.frame.streamId !== this.streamId) return;
    const { body } = decoded.frame;
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
      this.sendReset(CODEX_PROTOCOL_ERROR_RESET_REASON);
      const failure =
        error instanceof CodexChannelError
          ? error
          : new CodexChannelError('decrypt-failed', `a record from the executor failed: ${error instanceof HybridNoiseError ? error.message : String(error)}`);
      this.finish(failure);
    }
  }

  private sendReset(reason: string): void {
    if (this.socket.readyState !== WebSocket.OPEN) return;
    this.socket.send(encodeCodexRelayFrame({ streamId: this.streamId, body: { type: 'reset', reason } }), { binary: true });
  }

  private finish(error: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.closeError ??= error;
    // Let a final Reset go out before the socket closes.
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(1000);
    for (const listener of this.closeListeners.splice(0)) listener(this.closeError);
  }
}
