/**
 * The listener side of a `MessageTransport`, which every implementation composes: its
 * message, binary-message and close listeners, and the close delivered exactly once — to the
 * listeners set by then, at once, and to a listener set later, in a microtask — with the Error
 * the transport closed with (none when the close was clean).
 */
export class TransportListeners {
  private readonly messageListeners: Array<(message: string) => void> = [];
  private readonly binaryListeners: Array<(message: Uint8Array) => void> = [];
  private readonly closeListeners: Array<(error?: Error) => void> = [];
  private isClosed = false;
  private closeError: Error | undefined;

  get closed(): boolean {
    return this.isClosed;
  }

  /** The Error the transport closed with (undefined while open, or after a clean close). */
  get error(): Error | undefined {
    return this.closeError;
  }

  get hasMessageListener(): boolean {
    return this.messageListeners.length > 0;
  }

  get hasBinaryListener(): boolean {
    return this.binaryListeners.length > 0;
  }

  onMessage(listener: (message: string) => void): void {
    this.messageListeners.push(listener);
  }

  onBinaryMessage(listener: (message: Uint8Array) => void): void {
    this.binaryListeners.push(listener);
  }

  onClose(listener: (error?: Error) => void): void {
    if (this.isClosed) queueMicrotask(() => listener(this.closeError));
    else this.closeListeners.push(listener);
  }

  /** Hands `message` to each message listener in turn (a listener that throws stops it there, and the throw is the caller's). */
  emitMessage(message: string): void {
    for (const listener of this.messageListeners) listener(message);
  }

  /** Hands `message` to each binary listener in turn (as `emitMessage`). */
  emitBinary(message: Uint8Array): void {
    for (const listener of this.binaryListeners) listener(message);
  }

  /** Marks the transport closed and runs the close listeners with `error`; false (and nothing runs) when it was closed already. */
  close(error?: Error): boolean {
    if (this.isClosed) return false;
    this.isClosed = true;
    this.closeError = error;
    for (const listener of this.closeListeners.splice(0)) listener(error);
    return true;
  }
}
