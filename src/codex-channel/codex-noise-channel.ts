import WebSocket from 'ws';
import { decodeCodexRelayFrame } from '../codex-relay-frame/codex-relay-frame.js';
import type { HybridTransport } from '../noise-hybrid/hybrid-transport.js';
import { CodexChannelError } from './codex-channel-error.js';
import { CODEX_CLIENT_CLOSED_RESET_REASON } from './codex-channel-limits.js';
import { CodexRecordChannel, type CodexFramePort } from './codex-record-channel.js';

/**
 * The initiator's (client's) MessageTransport over one established codex Noise stream, on a
 * rendezvous socket of its own: the record layer is `CodexRecordChannel`'s; this class feeds it the
 * socket's frames of its stream (frames of other streams are ignored), and closes the socket when
 * the stream ends (a closing socket ends the stream with a CodexChannelError).
 */
export class CodexNoiseChannel extends CodexRecordChannel {
  constructor(
    private readonly socket: WebSocket,
    streamId: string,
    transport: HybridTransport,
    maxMessageBytes: number,
  ) {
    super(socketFramePort(socket), streamId, transport, maxMessageBytes, 'executor', CODEX_CLIENT_CLOSED_RESET_REASON);
    socket.on('message', (data, isBinary) => {
      if (!isBinary || this.closed) return;
      const decoded = decodeCodexRelayFrame(data as Buffer);
      if (decoded.ok && decoded.frame.streamId === this.streamId) this.receiveBody(decoded.frame.body);
    });
    socket.on('close', (code) => this.finish(code === 1000 || code === 1005 ? undefined : new CodexChannelError('socket-closed', `the rendezvous socket closed (code ${code})`)));
    socket.on('error', (error) => this.noteError(new CodexChannelError('socket-closed', `the rendezvous socket failed: ${error.message}`)));
  }

  protected finished(): void {
    // Let a final Reset go out before the socket closes.
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) this.socket.close(1000);
  }
}

/** A rendezvous WebSocket as a {@link CodexFramePort}. */
export function socketFramePort(socket: WebSocket): CodexFramePort {
  return {
    get open() {
      return socket.readyState === WebSocket.OPEN;
    },
    get bufferedAmount() {
      return socket.bufferedAmount;
    },
    send: (frame) => new Promise((resolve, reject) => socket.send(frame, { binary: true }, (error) => (error ? reject(error) : resolve()))),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
  };
}
