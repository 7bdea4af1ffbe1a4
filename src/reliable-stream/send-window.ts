/**
 * The sending half of a reliable stream: every outbound entry from the oldest unacknowledged seq
 * to the next seq, with the bookkeeping retransmission needs. Bounded in payload bytes and in data
 * segments; the owner only pushes what {@link SendWindow.canAccept} allows.
 */
import { ACK_BITS_WIDTH } from '../relay-frame/limits.js';

/** One outbound seq: a data segment, or the stream's `close` (which occupies a seq, like a FIN). */
export interface OutboundEntry {
  readonly seq: number;
  readonly kind: 'data' | 'close';
  readonly segmentIndex: number;
  readonly segmentCount: number;
  /** A view of the caller's message; kept until the seq is cumulatively acknowledged. */
  readonly payload: Uint8Array;
  /** Clock time of the last transmission attempt; null while never transmitted. */
  lastSentAt: number | null;
  /** Selectively acknowledged by the peer (`ackBits`): received, so not retransmitted. */
  sacked: boolean;
}

/** Outcome of applying a peer's ack state. */
export interface AckOutcome {
  /** Entries left the window (the cumulative ack advanced). */
  readonly progressed: boolean;
  /** The stream's `close` was among them. */
  readonly closeAcked: boolean;
}

const EMPTY = new Uint8Array(0);

export class SendWindow {
  private readonly entries: OutboundEntry[] = [];
  private dataBytes = 0;
  private dataSegments = 0;
  private next = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly maxSegments: number,
  ) {}

  /** The seq the next pushed entry gets. */
  get nextSeq(): number {
    return this.next;
  }

  /** Payload bytes not yet cumulatively acknowledged (transmitted or not). */
  get bufferedBytes(): number {
    return this.dataBytes;
  }

  /** Data segments not yet cumulatively acknowledged. */
  get bufferedSegments(): number {
    return this.dataSegments;
  }

  /** True when every pushed entry is acknowledged. */
  get isEmpty(): boolean {
    return this.entries.length === 0;
  }

  /** True if a message of this size fits in the window now. */
  canAccept(byteLength: number, segmentCount: number): boolean {
    return this.dataBytes + byteLength <= this.maxBytes && this.dataSegments + segmentCount <= this.maxSegments;
  }

  /** Appends one message's segments at the next seqs and returns the new entries. */
  pushMessage(segments: readonly Uint8Array[]): OutboundEntry[] {
    const added: OutboundEntry[] = [];
    const segmentCount = segments.length;
    for (let i = 0; i < segmentCount; i++) {
      const payload = segments[i]!;
      const entry: OutboundEntry = {
        seq: this.next++,
        kind: 'data',
        segmentIndex: i,
        segmentCount,
        payload,
        lastSentAt: null,
        sacked: false,
      };
      this.entries.push(entry);
      added.push(entry);
      this.dataBytes += payload.length;
    }
    this.dataSegments += segmentCount;
    return added;
  }

  /** Appends the stream's `close` at the next seq. */
  pushClose(): OutboundEntry {
    const entry: OutboundEntry = {
      seq: this.next++,
      kind: 'close',
      segmentIndex: 0,
      segmentCount: 1,
      payload: EMPTY,
      lastSentAt: null,
      sacked: false,
    };
    this.entries.push(entry);
    return entry;
  }

  /**
   * Applies a peer's `ack` (highest contiguous seq it received) and `ackBits`. The caller has
   * checked `ack < nextSeq`. Selective acks only stop retransmission of an entry; it stays in the
   * window (and counts against it) until the cumulative ack passes it.
   */
  applyAck(ack: number, ackBits: number): AckOutcome {
    let removed = 0;
    let closeAcked = false;
    while (removed < this.entries.length && this.entries[removed]!.seq <= ack) {
      const entry = this.entries[removed]!;
      if (entry.kind === 'close') closeAcked = true;
      else {
        this.dataBytes -= entry.payload.length;
        this.dataSegments -= 1;
      }
      removed++;
    }
    if (removed > 0) this.entries.splice(0, removed);
    if (ackBits !== 0 && this.entries.length > 0) {
      const first = this.entries[0]!.seq;
      for (let i = 0; i < ACK_BITS_WIDTH; i++) {
        if (((ackBits >>> i) & 1) === 0) continue;
        const entry = this.entries[ack + 1 + i - first];
        if (entry !== undefined) entry.sacked = true;
      }
    }
    return { progressed: removed > 0, closeAcked };
  }

  /** The unacknowledged entries, oldest first. */
  unacked(): readonly OutboundEntry[] {
    return this.entries;
  }

  /** Drops everything (the stream was reset). */
  clear(): void {
    this.entries.length = 0;
    this.dataBytes = 0;
    this.dataSegments = 0;
  }
}
