/**
 * The receiving half of a reliable stream: drops duplicates, buffers out-of-order segments within
 * a bounded window, reassembles segmented messages and releases whole messages in order. It also
 * produces the `ack` / `ackBits` state every outgoing frame carries.
 *
 * Memory bounds. Three pools hold received bytes: the partial message being reassembled (P), the
 * out-of-order segments (R), and — owned by the stream, passed in as `queuedBytes` — complete
 * messages not yet consumed by the local reader (Q).
 * - An in-order segment is accepted only if Q + P + len ≤ windowBytes. Since a message is at most
 *   maxMessageBytes ≤ windowBytes, it always fits once the reader has drained Q: no deadlock.
 * - An out-of-order segment is accepted only if R + len ≤ reorderBytes, Q + P + R + len ≤
 *   windowBytes + reorderBytes, and its seq is below nextSeq + windowSegments.
 * So Q + P + R ≤ windowBytes + reorderBytes at all times. A refused segment is simply not
 * acknowledged; the sender retransmits it later.
 */
import { ACK_BITS_WIDTH } from '../relay-frame/limits.js';
import { joinSegments } from './segmenter.js';

/** A received data segment (the fields of a `data` body). */
export interface InboundSegment {
  readonly seq: number;
  readonly segmentIndex: number;
  readonly segmentCount: number;
  readonly payload: Uint8Array;
}

/** What became of a received segment. */
export type ReceiveOutcome =
  /** Stored; `messages` are the whole messages it completed, in order (often none). */
  | { readonly kind: 'accepted'; readonly messages: Uint8Array[]; readonly inOrder: boolean }
  /** Already received (its seq is below nextSeq or buffered). */
  | { readonly kind: 'duplicate' }
  /** Beyond the seq window. */
  | { readonly kind: 'out-of-window' }
  /** No room in the byte budget (flow control); `inOrder` tells whether it was the next seq. */
  | { readonly kind: 'no-space'; readonly inOrder: boolean }
  /** The peer broke the protocol; the stream must be reset. */
  | { readonly kind: 'violation'; readonly reason: string };

/** What became of a received `close`. */
export type CloseOutcome = 'accepted' | 'duplicate' | { readonly violation: string };

/** Limits of a {@link ReceiveWindow}. */
export interface ReceiveWindowLimits {
  /** Budget for Q + P (in-order data awaiting the reader or reassembly). */
  readonly windowBytes: number;
  /** Budget for out-of-order segments. */
  readonly reorderBytes: number;
  /** Out-of-order segments are accepted only below nextSeq + windowSegments. */
  readonly windowSegments: number;
  /** Largest message the peer may send. */
  readonly maxMessageBytes: number;
}

interface PartialMessage {
  readonly segmentCount: number;
  readonly parts: Uint8Array[];
  bytes: number;
}

export class ReceiveWindow {
  private next = 0;
  private partial: PartialMessage | null = null;
  private readonly reorder = new Map<number, InboundSegment>();
  private reorderBytes = 0;
  private peerClosed = false;

  constructor(private readonly limits: ReceiveWindowLimits) {}

  /** The next seq expected from the peer. */
  get nextSeq(): number {
    return this.next;
  }

  /** Highest contiguous seq received (NO_ACK = -1 before any). */
  get ack(): number {
    return this.next - 1;
  }

  /** Bit i set if seq `ack + 1 + i` is buffered out of order. */
  get ackBits(): number {
    if (this.reorder.size === 0) return 0;
    let bits = 0;
    for (let i = 1; i < ACK_BITS_WIDTH; i++) {
      if (this.reorder.has(this.next + i)) bits |= 1 << i;
    }
    return bits >>> 0;
  }

  /** Bytes held for reassembly and reordering (P + R). */
  get bufferedBytes(): number {
    return (this.partial?.bytes ?? 0) + this.reorderBytes;
  }

  /** Bytes of the partial message being reassembled (P). */
  get partialBytes(): number {
    return this.partial?.bytes ?? 0;
  }

  /** True once the peer's `close` was received. */
  get closedByPeer(): boolean {
    return this.peerClosed;
  }

  /**
   * Takes one data segment. `queuedBytes` is Q: complete messages delivered but not yet consumed.
   */
  receive(segment: InboundSegment, queuedBytes: number): ReceiveOutcome {
    const { seq } = segment;
    if (seq < this.next || this.reorder.has(seq)) return { kind: 'duplicate' };
    if (this.peerClosed) return { kind: 'violation', reason: `data seq ${seq} after close` };
    const length = segment.payload.length;
    const held = queuedBytes + this.partialBytes;
    if (seq === this.next) {
      if (held + length > this.limits.windowBytes) return { kind: 'no-space', inOrder: true };
      const messages: Uint8Array[] = [];
      const violation = this.consume(segment, messages);
      if (violation !== null) return { kind: 'violation', reason: violation };
      for (let following = this.reorder.get(this.next); following !== undefined; following = this.reorder.get(this.next)) {
        this.reorder.delete(following.seq);
        this.reorderBytes -= following.payload.length;
        const later = this.consume(following, messages);
        if (later !== null) return { kind: 'violation', reason: later };
      }
      return { kind: 'accepted', messages, inOrder: true };
    }
    if (seq >= this.next + this.limits.windowSegments) return { kind: 'out-of-window' };
    if (
      this.reorderBytes + length > this.limits.reorderBytes ||
      held + this.reorderBytes + length > this.limits.windowBytes + this.limits.reorderBytes
    ) {
      return { kind: 'no-space', inOrder: false };
    }
    this.reorder.set(seq, segment);
    this.reorderBytes += length;
    return { kind: 'accepted', messages: [], inOrder: false };
  }

  /**
   * Takes the peer's `close`, which occupies the peer's next seq. The peer sends it only once all
   * its data is acknowledged, so nothing may be pending here.
   */
  receiveClose(): CloseOutcome {
    if (this.peerClosed) return 'duplicate';
    if (this.partial !== null || this.reorder.size > 0) {
      return { violation: 'close while a message is incomplete' };
    }
    this.peerClosed = true;
    this.next++;
    return 'accepted';
  }

  /** Drops everything (the stream was reset). */
  clear(): void {
    this.partial = null;
    this.reorder.clear();
    this.reorderBytes = 0;
  }

  /** Appends the next in-order segment to the partial message; returns a violation or null. */
  private consume(segment: InboundSegment, messages: Uint8Array[]): string | null {
    const { segmentIndex, segmentCount, payload } = segment;
    let partial = this.partial;
    if (partial === null) {
      if (segmentIndex !== 0) return `seq ${segment.seq} continues a message that never started`;
      partial = { segmentCount, parts: [], bytes: 0 };
    } else if (segmentIndex !== partial.parts.length || segmentCount !== partial.segmentCount) {
      return `seq ${segment.seq} is segment ${segmentIndex}/${segmentCount}, expected ${partial.parts.length}/${partial.segmentCount}`;
    }
    if (partial.bytes + payload.length > this.limits.maxMessageBytes) {
      return `message exceeds ${this.limits.maxMessageBytes} bytes`;
    }
    partial.parts.push(payload);
    partial.bytes += payload.length;
    this.next++;
    if (partial.parts.length === partial.segmentCount) {
      messages.push(joinSegments(partial.parts, partial.bytes));
      this.partial = null;
    } else {
      this.partial = partial;
    }
    return null;
  }
}
