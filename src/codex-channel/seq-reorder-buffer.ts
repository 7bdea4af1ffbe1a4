import { CodexChannelError } from './codex-channel-error.js';
import { CODEX_REORDER_BUFFER_BYTES, CODEX_REORDER_WINDOW_FRAMES } from './codex-channel-limits.js';

/**
 * Puts one direction's Data frames back in seq order (from 0, protocol notes §8): a frame at most
 * {@link CODEX_REORDER_WINDOW_FRAMES} ahead is held (up to {@link CODEX_REORDER_BUFFER_BYTES}),
 * further ahead is an error, a seq already delivered (a duplicate) is ignored. No retransmission
 * exists in 0.169.0, so a lost frame stalls the stream.
 */
export class SeqReorderBuffer {
  private next = 0;
  private readonly held = new Map<number, Uint8Array>();
  private heldBytes = 0;

  /** The payloads now deliverable in order, after receiving frame `seq`. @throws CodexChannelError `reorder-overflow`. */
  push(seq: number, payload: Uint8Array): Uint8Array[] {
    if (seq < this.next || this.held.has(seq)) return [];
    if (seq - this.next > CODEX_REORDER_WINDOW_FRAMES || this.heldBytes + payload.length > CODEX_REORDER_BUFFER_BYTES) {
      throw new CodexChannelError('reorder-overflow', `data frame ${seq} arrived while ${this.next} was expected, beyond the reorder window`);
    }
    if (seq !== this.next) {
      this.held.set(seq, payload);
      this.heldBytes += payload.length;
      return [];
    }
    const ready = [payload];
    this.next++;
    for (let held = this.held.get(this.next); held !== undefined; held = this.held.get(this.next)) {
      this.held.delete(this.next);
      this.heldBytes -= held.length;
      ready.push(held);
      this.next++;
    }
    return ready;
  }
}
