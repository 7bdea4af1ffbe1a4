/**
 * Reliable stream (layer 3): one per stream id per endpoint, carried by relay frames over a link
 * that may drop, duplicate and reorder frames, and that may disappear and come back (a WebSocket
 * reconnect, a relay restart). The stream delivers every message exactly once and in order.
 *
 * Mechanics
 * - Seqs start at 0 in each direction. A message larger than `maxSegmentPayload` is cut into
 *   consecutive seqs; the receiver reassembles from `messageStart = seq - segmentIndex`.
 * - Every outgoing frame carries `ack` (highest contiguous seq received) and `ackBits` (selective
 *   acks of the next 32 seqs). With nothing to send for `ackDelayMs`, a standalone `ack` goes out;
 *   after a quarter of the receive window it goes out at once.
 * - Unacknowledged segments are retransmitted when the retransmission timeout (RTO) expires; the
 *   RTO doubles on each expiry up to `maxRtoMs` and returns to `initialRtoMs` on progress.
 * - Send window: at most `sendWindowBytes` / `sendWindowSegments` unacknowledged. `send` resolves
 *   once its message is inside the window and otherwise waits (FIFO): memory does not grow.
 * - Receive side: duplicates are dropped, out-of-order segments are kept within a bounded reorder
 *   buffer, and complete messages wait for the reader within `receiveWindowBytes` (see
 *   ReceiveWindow). A segment that does not fit is dropped and retransmitted later; when a slow
 *   reader frees room the stream sends `resume` so the peer retransmits at once.
 * - Link: `attach(sendFrame)` / `detach()`. While detached the stream keeps all state and accepts
 *   sends within its window. On re-attach it sends `resume {nextSeq}` (the initiator sends `open`
 *   instead while it has not heard from the peer), then everything unacknowledged. A peer's
 *   `resume` triggers the same retransmission.
 * - Close (half-close, like TCP): `closeWrite()` ends this side's direction: no new sends; once
 *   every segment is acknowledged it sends `close`, which occupies this side's next seq (like a
 *   FIN) and is retransmitted until acknowledged. A peer's `close` ends the reader (after the
 *   queued messages) while this side may go on sending. The stream is closed when both `close`s
 *   are acknowledged. `close()` is closeWrite plus waiting (at most `closeTimeoutMs`, then reset)
 *   for the peer's close. The owner should keep a closed stream routable for a little while
 *   (about 2 × maxRtoMs) so that it can re-acknowledge a retransmitted `close`.
 * - Reset: `reset(reason)` or a peer's `reset` ends the stream both ways at once; pending sends
 *   reject, the reader throws, and the close listeners get a {@link StreamResetError}.
 *
 * Owner contract: call `receiveFrame` for every decoded frame of this stream id; `sendFrame` must
 * not synchronously call back into this stream (deliver asynchronously, as a WebSocket does).
 * Frames other than `open` for a stream id the responder does not know yet should be dropped, not
 * answered with `reset`: the initiator repeats `open` until it hears from the peer.
 */
import {
  ACK_BODY,
  CLOSE_BODY,
  allocateDataPayload,
  clampResetReason,
  encodeRelayFrame,
  streamIdToBytes,
  type DataBody,
  type RelayFrame,
  type RelayFrameBody,
} from '../relay-frame/relay-frame.js';
import { MAX_OPEN_PAYLOAD_BYTES, MAX_SEQ } from '../relay-frame/limits.js';
import { ResetReason } from '../relay-control/relay-endpoints.js';
import type { ByteDuplex } from '../transport/byte-duplex.js';
import { DeliveryQueue } from './delivery-queue.js';
import { ReceiveWindow } from './receive-window.js';
import { segmentMessage } from './segmenter.js';
import { SendWindow, type OutboundEntry } from './send-window.js';
import { StreamTimer, type StreamClock } from './stream-clock.js';
import { StreamClosedError, StreamResetError } from './stream-errors.js';
import { resolveStreamOptions, type ReliableStreamOptions, type ResolvedStreamOptions } from './stream-options.js';

export { StreamClosedError, StreamResetError } from './stream-errors.js';
export type { ReliableStreamOptions } from './stream-options.js';
export type { StreamClock } from './stream-clock.js';

/**
 * Sends one encoded frame on the current link. Return `false` when the frame was not taken (the
 * socket is closing); the stream then treats it as lost and retransmits it later.
 */
export type FrameSink = (frame: Uint8Array) => boolean | void;

/**
 * Lifecycle as seen by the user: 'open' both ways; 'closing' once either direction is closed;
 * 'closed' when both are (gracefully); 'reset' after a reset.
 */
export type ReliableStreamState = 'open' | 'closing' | 'closed' | 'reset';

/** Counters for metrics. Monotonic except the gauges marked as such. */
export interface ReliableStreamStats {
  readonly framesSent: number;
  readonly framesReceived: number;
  /** Frames passed to receiveFrame with another stream id. */
  readonly framesIgnored: number;
  /** Messages accepted by `send`. */
  readonly messagesSent: number;
  /** Messages released in order to the reader. */
  readonly messagesDelivered: number;
  /** First transmissions of data segments (and of `close`). */
  readonly segmentsSent: number;
  /** Repeated transmissions (timeout, peer resume, re-attach). */
  readonly retransmits: number;
  /** Received segments (or `close`) already held. */
  readonly duplicatesDropped: number;
  /** Received segments beyond the receive seq window. */
  readonly outOfWindowDropped: number;
  /** Received segments dropped because the receive budget was full. */
  readonly flowControlDropped: number;
  /** Gauge: unacknowledged payload bytes held by the send window. */
  readonly bytesInFlight: number;
  /** Gauge: unacknowledged data segments. */
  readonly segmentsInFlight: number;
  /** Gauge: `send` calls waiting for room. */
  readonly sendWaiters: number;
  /** Gauge: received bytes held (reassembly, reorder buffer and unread messages). */
  readonly receiveBufferedBytes: number;
  /** Gauge: current retransmission timeout. */
  readonly rtoMs: number;
}

/** This side's direction: accepting sends, flushing before `close`, `close` in flight, done. */
type WriteState = 'open' | 'draining' | 'close-sent' | 'done';

interface SendWaiter {
  readonly segments: Uint8Array[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

interface Deferred {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (error: Error) => void;
}

type Counters = {
  -readonly [K in
    | 'framesSent'
    | 'framesReceived'
    | 'framesIgnored'
    | 'messagesSent'
    | 'messagesDelivered'
    | 'segmentsSent'
    | 'retransmits'
    | 'duplicatesDropped'
    | 'outOfWindowDropped'
    | 'flowControlDropped']: number;
};

/** Rethrows a listener's exception outside the stream's own call stack. */
function reportListenerError(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

function chunkBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  // A Uint8ArrayList (what @chainsafe/libp2p-noise 16 writes) flattens with subarray().
  if (typeof chunk === 'object' && chunk !== null && typeof (chunk as { subarray?: unknown }).subarray === 'function') {
    const bytes = (chunk as { subarray(): unknown }).subarray();
    if (bytes instanceof Uint8Array) return bytes;
  }
  throw new TypeError('ReliableStream sink: chunk is not a Uint8Array');
}

/** A message-oriented reliable stream over relay frames. See the module comment. */
export class ReliableStream {
  /** Canonical lowercase stream id. */
  readonly streamId: string;
  private readonly options: ResolvedStreamOptions;
  private readonly clock: StreamClock;
  private readonly idBytes: Uint8Array;
  private readonly sendWindow: SendWindow;
  private readonly receiveWindow: ReceiveWindow;
  private readonly queue: DeliveryQueue;
  private readonly waiters: SendWaiter[] = [];
  private readonly messageListeners = new Set<(message: Uint8Array) => void>();
  private readonly endListeners = new Set<() => void>();
  private readonly closeListeners = new Set<(error?: StreamResetError) => void>();
  private readonly rtoTimer: StreamTimer;
  private readonly ackTimer: StreamTimer;
  private readonly closeTimer: StreamTimer;
  private readonly ackEveryBytes: number;
  private readonly ackEverySegments: number;
  private readonly counters: Counters = {
    framesSent: 0,
    framesReceived: 0,
    framesIgnored: 0,
    messagesSent: 0,
    messagesDelivered: 0,
    segmentsSent: 0,
    retransmits: 0,
    duplicatesDropped: 0,
    outOfWindowDropped: 0,
    flowControlDropped: 0,
  };
  private link: FrameSink | null = null;
  private everAttached = false;
  private writeState: WriteState = 'open';
  private ended: 'closed' | 'reset' | null = null;
  private rto: number;
  private peerSeen = false;
  private openSentAt: number | null = null;
  private ackOwed = false;
  private receivedSinceAck = 0;
  private receivedBytesSinceAck = 0;
  private flowBlocked = false;
  private resetError: StreamResetError | undefined;
  private resetFrameOwed: string | undefined;
  private consumer: 'none' | 'listeners' | 'duplex' = 'none';
  private writeDone: Deferred | undefined;
  private closeDone: Deferred | undefined;

  /** Throws RangeError for inconsistent options and RelayFrameEncodeError for a bad stream id. */
  constructor(options: ReliableStreamOptions) {
    this.options = resolveStreamOptions(options);
    if (this.options.openPayload.length > MAX_OPEN_PAYLOAD_BYTES) {
      throw new RangeError(`ReliableStream: openPayload exceeds ${MAX_OPEN_PAYLOAD_BYTES} bytes`);
    }
    this.idBytes = streamIdToBytes(options.streamId);
    this.streamId = options.streamId.toLowerCase();
    this.clock = this.options.clock;
    this.rto = this.options.initialRtoMs;
    this.sendWindow = new SendWindow(this.options.sendWindowBytes, this.options.sendWindowSegments);
    this.receiveWindow = new ReceiveWindow({
      windowBytes: this.options.receiveWindowBytes,
      reorderBytes: this.options.reorderBufferBytes,
      windowSegments: this.options.receiveWindowSegments,
      maxMessageBytes: this.options.maxMessageBytes,
    });
    this.queue = new DeliveryQueue(() => this.onQueueConsumed());
    this.rtoTimer = new StreamTimer(this.clock, () => this.onRetransmitTimeout());
    this.ackTimer = new StreamTimer(this.clock, () => {
      if (this.ackOwed && this.ended !== 'reset') this.sendAckNow();
    });
    this.closeTimer = new StreamTimer(this.clock, () => {
      this.terminate(new StreamResetError('close timed out', 'local'), true);
    });
    this.ackEveryBytes = Math.max(1, Math.floor(this.options.receiveWindowBytes / 4));
    this.ackEverySegments = Math.max(1, Math.floor(this.options.receiveWindowSegments / 4));
  }

  /** Lifecycle state. */
  get state(): ReliableStreamState {
    if (this.ended !== null) return this.ended;
    return this.writeState === 'open' && !this.receiveWindow.closedByPeer ? 'open' : 'closing';
  }

  /** True while `send` accepts messages (this side's direction is open and not reset). */
  get writable(): boolean {
    return this.writeState === 'open' && this.ended === null;
  }

  /** True once the peer's `close` arrived: no more messages will be received. */
  get peerClosed(): boolean {
    return this.receiveWindow.closedByPeer;
  }

  /** True while a link is attached. */
  get attached(): boolean {
    return this.link !== null;
  }

  /** The reset that ended the stream, if it was reset. */
  get resetReason(): StreamResetError | undefined {
    return this.resetError;
  }

  /** A snapshot of the counters and gauges. */
  get stats(): ReliableStreamStats {
    return {
      ...this.counters,
      bytesInFlight: this.sendWindow.bufferedBytes,
      segmentsInFlight: this.sendWindow.bufferedSegments,
      sendWaiters: this.waiters.length,
      receiveBufferedBytes: this.receiveWindow.bufferedBytes + this.queue.bufferedBytes,
      rtoMs: this.rto,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Link

  /**
   * Attaches (or replaces) the link frames are sent on. The first attach sends `open` (initiator)
   * or an `ack`; a later one sends `resume` with this side's ack state, then retransmits every
   * unacknowledged segment.
   */
  attach(sendFrame: FrameSink): void {
    this.link = sendFrame;
    const first = !this.everAttached;
    this.everAttached = true;
    if (this.ended === 'reset') {
      const reason = this.resetFrameOwed;
      if (reason !== undefined && this.emit({ type: 'reset', reason })) this.resetFrameOwed = undefined;
      return;
    }
    this.rto = this.options.initialRtoMs;
    if (this.options.role === 'initiator' && !this.peerSeen) this.sendOpen();
    else if (first) this.sendAckNow();
    else this.emit({ type: 'resume', nextSeq: this.sendWindow.nextSeq });
    this.retransmitUnacked();
    this.armRetransmitTimer();
  }

  /** Detaches the link (it went down). State, unacknowledged data and the window are kept. */
  detach(): void {
    this.link = null;
    this.rtoTimer.cancel();
    this.ackTimer.cancel();
  }

  // -------------------------------------------------------------------------------------------
  // Sending and closing

  /**
   * Queues one message. Resolves once the message is inside the send window (it will then be
   * delivered even across reconnects); waits while the window is full. Rejects with
   * {@link StreamClosedError} after closeWrite/close, {@link StreamResetError} after a reset, and
   * RangeError above `maxMessageBytes`. The stream keeps a view of `message` until the peer
   * acknowledges it: do not modify it after calling send.
   */
  send(message: Uint8Array): Promise<void> {
    if (this.resetError !== undefined) return Promise.reject(this.resetError);
    if (this.writeState !== 'open') return Promise.reject(new StreamClosedError());
    if (!(message instanceof Uint8Array)) return Promise.reject(new TypeError('ReliableStream.send takes a Uint8Array'));
    if (message.length > this.options.maxMessageBytes) {
      return Promise.reject(
        new RangeError(`message of ${message.length} bytes exceeds maxMessageBytes ${this.options.maxMessageBytes}`),
      );
    }
    const segments = segmentMessage(message, this.options.maxSegmentPayload);
    if (this.waiters.length === 0 && this.sendWindow.canAccept(message.length, segments.length)) {
      return this.accept(segments) ? Promise.resolve() : Promise.reject(this.resetError);
    }
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ segments, bytes: message.length, resolve, reject });
    });
  }

  /**
   * Ends this side's direction (half-close): no new sends; messages already passed to `send`
   * are still delivered. Resolves once the peer acknowledged all of them and the `close`.
   * Receiving goes on until the peer closes its side. Rejects with {@link StreamResetError} if
   * the stream is reset first.
   */
  closeWrite(): Promise<void> {
    if (this.resetError !== undefined) return Promise.reject(this.resetError);
    if (this.writeState === 'done') return Promise.resolve();
    this.writeDone ??= createDeferred();
    if (this.writeState === 'open') {
      this.writeState = 'draining';
      this.maybeSendClose();
    }
    return this.writeDone.promise;
  }

  /**
   * Ends the stream gracefully: {@link closeWrite}, then waits for the peer's close. Resolves
   * when both directions are closed and acknowledged; if that takes longer than
   * `closeTimeoutMs` the stream is reset. Rejects with {@link StreamResetError} on a reset.
   */
  close(): Promise<void> {
    if (this.ended === 'closed') return Promise.resolve();
    if (this.resetError !== undefined) return Promise.reject(this.resetError);
    if (this.closeDone === undefined) {
      this.closeDone = createDeferred();
      this.closeTimer.ensureWithin(this.options.closeTimeoutMs);
    }
    const done = this.closeDone.promise;
    // Its outcome is reported through `done`.
    this.closeWrite().catch(() => {});
    return done;
  }

  /** Ends the stream at once, both ways; the peer and the local user get `reason`. */
  reset(reason: string): void {
    this.terminate(new StreamResetError(clampResetReason(reason), 'local'), true);
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  /** Processes one decoded inbound frame of this stream. Never throws for peer input. */
  receiveFrame(frame: RelayFrame): void {
    if (frame.streamId !== this.streamId) {
      this.counters.framesIgnored++;
      return;
    }
    this.counters.framesReceived++;
    if (this.ended === 'reset') return;
    const { body } = frame;
    if (body.type === 'reset') {
      this.terminate(new StreamResetError(body.reason, 'peer'), false);
      return;
    }
    this.peerSeen = true;
    if (frame.ack >= this.sendWindow.nextSeq) {
      this.protocolViolation(`ack ${frame.ack} for a seq never sent (next ${this.sendWindow.nextSeq})`);
      return;
    }
    const outcome = this.sendWindow.applyAck(frame.ack, frame.ackBits);
    if (outcome.progressed) {
      this.rto = this.options.initialRtoMs;
      if (outcome.closeAcked) {
        this.writeState = 'done';
        this.writeDone?.resolve();
        this.maybeFinish();
      } else {
        this.pumpWaiters();
        this.maybeSendClose();
      }
      this.armRetransmitTimer();
      if (this.isReset()) return;
    }
    switch (body.type) {
      case 'data':
        this.onData(body);
        break;
      case 'close':
        this.onPeerClose();
        break;
      case 'resume':
        this.onPeerResume();
        break;
      case 'open':
        this.sendAckNow();
        break;
      case 'ack':
      case 'heartbeat':
        break;
    }
  }

  /**
   * Registers a listener for received messages, in order. Messages that arrived before the first
   * listener are handed to it at once. While no listener is registered messages wait (within the
   * receive window). Exclusive with {@link toDuplex}. Returns an unsubscribe function.
   */
  onMessage(listener: (message: Uint8Array) => void): () => void {
    if (this.consumer === 'duplex') throw new Error('ReliableStream: messages are already consumed by toDuplex()');
    this.consumer = 'listeners';
    this.messageListeners.add(listener);
    for (const message of this.queue.drain()) this.dispatch(message);
    return () => {
      this.messageListeners.delete(listener);
    };
  }

  /**
   * Registers a listener called once the peer closed its direction: every message it sent has
   * been received (and, with {@link onMessage} listeners registered, already handed to them).
   * Returns an unsubscribe function.
   */
  onEnd(listener: () => void): () => void {
    this.endListeners.add(listener);
    return () => {
      this.endListeners.delete(listener);
    };
  }

  /**
   * Registers a listener called once when the stream is over: without argument after a graceful
   * close of both directions, with the {@link StreamResetError} after a reset. Returns an
   * unsubscribe function.
   */
  onClose(listener: (error?: StreamResetError) => void): () => void {
    if (this.ended !== null) {
      const error = this.resetError;
      queueMicrotask(() => listener(error));
      return () => {};
    }
    this.closeListeners.add(listener);
    return () => {
      this.closeListeners.delete(listener);
    };
  }

  /**
   * The stream as a {@link ByteDuplex} for it-pipe / libp2p-noise: each message from the peer is
   * one chunk of `source` (which ends after the peer's close and throws on reset); each chunk given
   * to `sink` is sent as one message, awaiting `send` (backpressure). When the sink's source ends
   * the sink calls {@link closeWrite} and resolves once the peer acknowledged everything; if the
   * sink's source throws, the stream is reset. Call at most once; exclusive with
   * {@link onMessage}.
   */
  toDuplex(): ByteDuplex {
    if (this.consumer !== 'none') {
      throw new Error(`ReliableStream: messages are already consumed by ${this.consumer === 'duplex' ? 'toDuplex()' : 'onMessage()'}`);
    }
    this.consumer = 'duplex';
    const maxSegmentPayload = this.options.maxSegmentPayload;
    return {
      // A chunk that fits one segment travels in a frame built around it (no copy on first send).
      allocateChunk: (length) => (length <= maxSegmentPayload ? allocateDataPayload(length) : new Uint8Array(length)),
      source: this.queue,
      sink: async (source) => {
        try {
          for await (const chunk of source) await this.send(chunkBytes(chunk));
        } catch (error) {
          if (!(error instanceof StreamResetError) && !(error instanceof StreamClosedError)) {
            this.reset(ResetReason.WriterFailed);
          }
          throw error;
        }
        await this.closeWrite();
      },
    };
  }

  // -------------------------------------------------------------------------------------------
  // Internals: sending

  /** Encodes `body` with the current ack state and hands it to the link. */
  private emit(body: RelayFrameBody): boolean {
    const link = this.link;
    if (link === null) return false;
    const frame = encodeRelayFrame({
      streamId: this.idBytes,
      ack: this.receiveWindow.ack,
      ackBits: this.receiveWindow.ackBits,
      body,
    });
    this.counters.framesSent++;
    let taken: boolean;
    try {
      taken = link(frame) !== false;
    } catch {
      taken = false;
    }
    if (taken) {
      this.ackOwed = false;
      this.receivedSinceAck = 0;
      this.receivedBytesSinceAck = 0;
      this.ackTimer.cancel();
    }
    return taken;
  }

  private sendAckNow(): void {
    this.emit(ACK_BODY);
  }

  private sendOpen(): void {
    this.openSentAt = this.clock.now();
    this.emit({ type: 'open', payload: this.options.openPayload });
  }

  private transmit(entry: OutboundEntry): void {
    if (this.link === null) return;
    if (entry.lastSentAt === null) this.counters.segmentsSent++;
    else this.counters.retransmits++;
    entry.lastSentAt = this.clock.now();
    if (entry.kind === 'close') {
      this.emit(CLOSE_BODY);
      return;
    }
    const body: DataBody = {
      type: 'data',
      seq: entry.seq,
      segmentIndex: entry.segmentIndex,
      segmentCount: entry.segmentCount,
      payload: entry.payload,
    };
    this.emit(body);
  }

  private retransmitUnacked(): void {
    for (const entry of this.sendWindow.unacked().slice()) {
      if (this.link === null || this.isReset()) return;
      if (!entry.sacked) this.transmit(entry);
    }
  }

  /** Puts a message's segments into the window and transmits them. False if the stream reset. */
  private accept(segments: Uint8Array[]): boolean {
    // Keep one seq spare for `close`.
    if (this.sendWindow.nextSeq + segments.length > MAX_SEQ) {
      this.terminate(new StreamResetError('sequence space exhausted', 'local'), true);
      return false;
    }
    const entries = this.sendWindow.pushMessage(segments);
    this.counters.messagesSent++;
    if (this.link !== null) {
      for (const entry of entries) this.transmit(entry);
      if (!this.rtoTimer.pending) this.armRetransmitTimer();
    }
    return true;
  }

  /** Admits waiting messages, in order, while they fit. */
  private pumpWaiters(): void {
    while (this.waiters.length > 0 && !this.isReset()) {
      const waiter = this.waiters[0]!;
      if (!this.sendWindow.canAccept(waiter.bytes, waiter.segments.length)) return;
      this.waiters.shift();
      if (this.accept(waiter.segments)) waiter.resolve();
      else waiter.reject(this.resetError!);
    }
  }

  /** Sends `close` once this side is draining and every data segment is acknowledged. */
  private maybeSendClose(): void {
    if (this.writeState !== 'draining' || this.waiters.length > 0 || !this.sendWindow.isEmpty) return;
    const entry = this.sendWindow.pushClose();
    this.writeState = 'close-sent';
    this.transmit(entry);
    this.armRetransmitTimer();
  }

  /** Ends the stream once our `close` is acknowledged and the peer's received. */
  private maybeFinish(): void {
    if (this.ended !== null || this.writeState !== 'done' || !this.receiveWindow.closedByPeer) return;
    this.ended = 'closed';
    this.rtoTimer.cancel();
    this.ackTimer.cancel();
    this.closeTimer.cancel();
    this.closeDone?.resolve();
    this.notifyClose(undefined);
  }

  /** Re-reads the state (TypeScript keeps a narrowed field across calls that change it). */
  private isReset(): boolean {
    return this.ended === 'reset';
  }

  private openPending(): boolean {
    return this.options.role === 'initiator' && !this.peerSeen && this.openSentAt !== null;
  }

  /** Arms the RTO timer for the oldest outstanding transmission, or cancels it. */
  private armRetransmitTimer(): void {
    if (this.link === null || this.ended !== null) {
      this.rtoTimer.cancel();
      return;
    }
    let oldest = this.openPending() ? this.openSentAt! : Number.POSITIVE_INFINITY;
    for (const entry of this.sendWindow.unacked()) {
      if (!entry.sacked && entry.lastSentAt !== null && entry.lastSentAt < oldest) oldest = entry.lastSentAt;
    }
    if (oldest === Number.POSITIVE_INFINITY) {
      this.rtoTimer.cancel();
      return;
    }
    this.rtoTimer.ensureBy(oldest + this.rto);
  }

  private onRetransmitTimeout(): void {
    if (this.link === null || this.ended !== null) return;
    const now = this.clock.now();
    let expired = false;
    if (this.openPending() && now - this.openSentAt! >= this.rto) {
      this.sendOpen();
      expired = true;
    }
    for (const entry of this.sendWindow.unacked().slice()) {
      if (this.link === null || this.isReset()) return;
      if (!entry.sacked && entry.lastSentAt !== null && now - entry.lastSentAt >= this.rto) {
        this.transmit(entry);
        expired = true;
      }
    }
    if (expired) this.rto = Math.min(this.rto * 2, this.options.maxRtoMs);
    this.armRetransmitTimer();
  }

  // -------------------------------------------------------------------------------------------
  // Internals: receiving

  private onData(body: DataBody): void {
    const outcome = this.receiveWindow.receive(body, this.queue.bufferedBytes);
    switch (outcome.kind) {
      case 'accepted':
        this.receivedSinceAck++;
        this.receivedBytesSinceAck += body.payload.length;
        for (const message of outcome.messages) {
          this.counters.messagesDelivered++;
          this.dispatch(message);
        }
        break;
      case 'duplicate':
        this.counters.duplicatesDropped++;
        break;
      case 'out-of-window':
        this.counters.outOfWindowDropped++;
        break;
      case 'no-space':
        this.counters.flowControlDropped++;
        if (outcome.inOrder) this.flowBlocked = true;
        break;
      case 'violation':
        this.protocolViolation(outcome.reason);
        return;
    }
    if (!this.isReset()) this.scheduleAck();
  }

  private scheduleAck(): void {
    this.ackOwed = true;
    if (this.receivedSinceAck >= this.ackEverySegments || this.receivedBytesSinceAck >= this.ackEveryBytes) {
      this.sendAckNow();
      return;
    }
    if (this.link !== null) this.ackTimer.ensureWithin(this.options.ackDelayMs);
  }

  private dispatch(message: Uint8Array): void {
    if (this.consumer !== 'listeners' || this.messageListeners.size === 0) {
      this.queue.push(message);
      return;
    }
    for (const listener of this.messageListeners) {
      try {
        listener(message);
      } catch (error) {
        reportListenerError(error);
      }
    }
  }

  private onPeerClose(): void {
    const outcome = this.receiveWindow.receiveClose();
    if (outcome === 'duplicate') {
      this.counters.duplicatesDropped++;
      this.sendAckNow();
      return;
    }
    if (outcome !== 'accepted') {
      this.protocolViolation(outcome.violation);
      return;
    }
    this.sendAckNow();
    this.queue.end();
    for (const listener of [...this.endListeners]) {
      try {
        listener();
      } catch (error) {
        reportListenerError(error);
      }
    }
    this.maybeFinish();
  }

  /**
   * The peer re-attached or freed receive room: retransmit now. Its `nextSeq` is informational:
   * a resume may arrive after data sent later (reordering), so it is not checked against what was
   * received.
   */
  private onPeerResume(): void {
    this.rto = this.options.initialRtoMs;
    this.ackOwed = true;
    this.retransmitUnacked();
    if (this.ackOwed) this.sendAckNow();
    this.armRetransmitTimer();
  }

  /** The reader consumed messages: if a segment was refused for lack of room, ask for it now. */
  private onQueueConsumed(): void {
    if (!this.flowBlocked || this.ended !== null) return;
    const held = this.queue.bufferedBytes;
    if (held > 0 && held + this.receiveWindow.partialBytes > this.options.receiveWindowBytes / 2) return;
    this.flowBlocked = false;
    this.emit({ type: 'resume', nextSeq: this.sendWindow.nextSeq });
  }

  // -------------------------------------------------------------------------------------------
  // Internals: ending

  private protocolViolation(reason: string): void {
    this.terminate(new StreamResetError(clampResetReason(`protocol violation: ${reason}`), 'local'), true);
  }

  private terminate(error: StreamResetError, notifyPeer: boolean): void {
    if (this.ended !== null) return;
    if (notifyPeer && !this.emit({ type: 'reset', reason: error.reason })) this.resetFrameOwed = error.reason;
    this.ended = 'reset';
    this.resetError = error;
    this.rtoTimer.cancel();
    this.ackTimer.cancel();
    this.closeTimer.cancel();
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    this.sendWindow.clear();
    this.receiveWindow.clear();
    this.queue.fail(error);
    this.writeDone?.reject(error);
    this.closeDone?.reject(error);
    this.notifyClose(error);
  }

  private notifyClose(error: StreamResetError | undefined): void {
    const listeners = [...this.closeListeners];
    this.closeListeners.clear();
    this.endListeners.clear();
    for (const listener of listeners) {
      try {
        listener(error);
      } catch (listenerError) {
        reportListenerError(listenerError);
      }
    }
  }
}

function createDeferred(): Deferred {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
