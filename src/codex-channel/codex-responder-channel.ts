import type { HybridTransport } from '../noise-hybrid/hybrid-transport.js';
import { CodexChannelError } from './codex-channel-error.js';
import { CODEX_EXECUTOR_CLOSED_RESET_REASON } from './codex-channel-limits.js';
import { CodexRecordChannel, type CodexFramePort } from './codex-record-channel.js';

/**
 * The responder's (executor's) MessageTransport over one established codex Noise stream. The
 * executor's one rendezvous socket carries all its streams, so this channel does not own it: the
 * executor routes the frames of this stream to {@link receiveBody}, ends it with {@link socketLost}
 * when the socket goes, and is told by `onEnded` when the stream is over (to forget it). It never
 * pauses the shared socket (the agent does not pause its receivers) and carries no binary messages:
 * the codex wire is JSON only.
 */
export class CodexResponderChannel extends CodexRecordChannel {
  constructor(
    port: CodexFramePort,
    streamId: string,
    transport: HybridTransport,
    maxMessageBytes: number,
    /** `hyb1:` fingerprint of the client key the handshake authenticated. */
    readonly remoteIdentity: string,
    private readonly onEnded: () => void,
  ) {
    super({ get open() { return port.open; }, get bufferedAmount() { return port.bufferedAmount; }, send: (frame) => port.send(frame), pause: () => undefined, resume: () => undefined }, streamId, transport, maxMessageBytes, 'client', CODEX_EXECUTOR_CLOSED_RESET_REASON);
  }

  /** The executor's socket closed: the stream is gone with it (the codex wire has no resume). */
  socketLost(): void {
    this.finish(new CodexChannelError('socket-closed', 'the rendezvous socket closed'));
  }

  protected finished(): void {
    this.onEnded();
  }
}
