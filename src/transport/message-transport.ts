/**
 * Cap on one whole message (one JSON-RPC message) in either direction, by default: 64 MiB, the
 * codex relay's. The JSON-RPC connection and the Noise channel both apply it. Defined here and
 * nowhere else.
 */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/**
 * A bidirectional, ordered, reliable channel of whole messages. The JSON-RPC connection sits on
 * this seam, so the same exec protocol runs over a direct WebSocket, stdio lines, or a Noise channel
 * carried by the relay's reliable stream.
 *
 * Contract:
 * - `send` accepts one whole message (UTF-8 JSON text). Messages are delivered in call order. The
 *   returned promise resolves once the transport has accepted the message into its bounded buffer
 *   (this is where backpressure reaches the writer) and rejects if the transport is closed.
 * - Every message received is passed to the `message` listener exactly once, in order.
 * - `pauseReceiving` stops calling the `message` listeners until `resumeReceiving`; the transport
 *   stops reading its underlying stream, so the peer's writes block (TCP, or the reliable stream's
 *   receive window) instead of messages piling up here. Messages it had already read are held (at
 *   most one read of the underlying stream) and delivered, in order, on resume.
 * - `close` is idempotent; the `close` listeners run exactly once, whoever closed the transport,
 *   with an Error when the close was not clean.
 */
export interface MessageTransport {
  /** Short fixed label for logs and metrics: 'websocket' | 'stdio' | 'relay' | 'memory'. */
  readonly kind: TransportKind;
  send(message: string): Promise<void>;
  onMessage(listener: (message: string) => void): void;
  onClose(listener: (error?: Error) => void): void;
  /** Receive-side backpressure: no `message` listener runs from now until `resumeReceiving`. */
  pauseReceiving(): void;
  resumeReceiving(): void;
  close(reason?: string): void;
  readonly closed: boolean;
  /**
   * Binary messages (the `binaryOutput` extension), on transports that carry them (WebSocket binary
   * frames, the Noise channel's binary frames; not stdio). Same ordering and backpressure as `send`:
   * text and binary messages are delivered in one order. The message may be given as its parts, in
   * order (one message all the same), so that a header and a body are never copied together first.
   */
  sendBinary?(message: Uint8Array | readonly Uint8Array[]): Promise<void>;
  /** Receives binary messages; a transport with no such listener treats them as it always did. */
  onBinaryMessage?(listener: (message: Uint8Array) => void): void;
}

export type TransportKind = 'websocket' | 'stdio' | 'relay' | 'memory';
