import type { Readable, Writable } from 'node:stream';
import type { MessageTransport } from './message-transport.js';
import { ReceiveGate } from './receive-gate.js';
import { TransportListeners } from './transport-listeners.js';

/**
 * A MessageTransport over a pair of byte streams carrying one JSON object per line (the agent's
 * stdio mode). A line longer than `maxLineBytes` is cut there and the rest of it dropped, so the
 * JSON-RPC layer sees an over-cap message and answers -32600 while memory stays bounded.
 */
export class StdioTransport implements MessageTransport {
  readonly kind = 'stdio' as const;
  private readonly listeners = new TransportListeners();
  private pieces: Buffer[] = [];
  private pieceBytes = 0;
  private discardingOverlongLine = false;
  private readonly gate: ReceiveGate;

  constructor(
    input: Readable,
    private readonly output: Writable,
    private readonly maxLineBytes: number,
  ) {
    this.gate = new ReceiveGate((line) => this.listeners.emitMessage(line), input);
    input.on('data', (data: Buffer | string) => this.consume(typeof data === 'string' ? Buffer.from(data) : data));
    input.on('end', () => this.finish());
    input.on('error', (error) => this.finish(error));
    output.on('error', (error) => this.finish(error));
  }

  get closed(): boolean {
    return this.listeners.closed;
  }

  send(message: string): Promise<void> {
    if (this.listeners.closed) return Promise.reject(new Error('transport closed'));
    return new Promise((resolve, reject) => {
      this.output.write(`${message}\n`, (error) => (error ? reject(error) : resolve()));
    });
  }

  onMessage(listener: (message: string) => void): void {
    this.listeners.onMessage(listener);
  }

  onClose(listener: (error?: Error) => void): void {
    this.listeners.onClose(listener);
  }

  pauseReceiving(): void {
    this.gate.pause();
  }

  resumeReceiving(): void {
    this.gate.resume();
  }

  close(): void {
    this.finish();
  }

  private consume(data: Buffer): void {
    let start = 0;
    while (start < data.length) {
      const newline = data.indexOf(0x0a, start);
      const end = newline === -1 ? data.length : newline;
      this.append(data.subarray(start, end));
      if (newline === -1) break;
      this.emitLine();
      start = newline + 1;
    }
  }

  private append(piece: Buffer): void {
    if (this.discardingOverlongLine || piece.length === 0) return;
    const room = this.maxLineBytes + 1 - this.pieceBytes;
    if (piece.length >= room) {
      this.pieces.push(piece.subarray(0, room));
      this.pieceBytes += room;
      this.discardingOverlongLine = true;
      return;
    }
    this.pieces.push(piece);
    this.pieceBytes += piece.length;
  }

  private emitLine(): void {
    const line = Buffer.concat(this.pieces, this.pieceBytes).toString('utf8');
    this.pieces = [];
    this.pieceBytes = 0;
    this.discardingOverlongLine = false;
    if (line.trim().length === 0) return;
    this.gate.accept(line);
  }

  private finish(error?: Error): void {
    this.listeners.close(error);
  }
}
