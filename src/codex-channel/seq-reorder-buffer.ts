import { CodexChannelError } from './codex-channel-error.js';
import { CODEX_MISSING_FRAME_TIMEOUT_MS, CODEX_REORDER_BUFFER_BYTES, CODEX_REORDER_WINDOW_FRAMES } from './codex-channel-limits.js';

export interface SeqReorderBufferOptions {
  /**
   * Called once, from a timer, when frames have been held behind a missing seq for `missingFrameTimeoutMs`
   * without the stream moving on in order: that frame is lost (0.169.0 resends nothing). The buffer
   * holds nothing after it and delivers nothing more.
   */
  onFrameLost(error: CodexChannelError): void;
  /** Default {@link CODEX_MISSING_FRAME_TIMEOUT_MS}. */
  missingFrameTimeoutMs?: number;
}

/**
 * Puts one direction's Data frames back in seq order (from 0, protocol notes §8): a frame at most
 * {@link CODEX_REORDER_WINDOW_FRAMES} ahead is held (up to {@link CODEX_REORDER_BUFFER_BYTES}),
 * further ahead is an error, a seq already delivered (a duplicate) is ignored. No retransmission
 * exists in 0.169.0, so a missing frame is waited for only so long: one timer runs while frames are
 * held, restarted each time the stream moves on in order with frames still held, and stopped when
 * none are; when it fires the frame is lost (`onFrameLost`, a `frame-lost` CodexChannelError).
 * {@link close} stops it.
 */
export class SeqReorderBuffer {
  private next = 0;
  private readonly held = new Map<number, Uint8Array>();
  private heldBytes = 0;
  private missingFrameTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly missingFrameTimeoutMs: number;

  constructor(private readonly options: SeqReorderBufferOptions) {
    this.missingFrameTimeoutMs = options.missingFrameTimeoutMs ?? CODEX_MISSING_FRAME_TIMEOUT_MS;
  }

  /** Whether a missing frame is being waited for (frames are held behind it). */
  get waitingForMissingFrame(): boolean {
    return this.missingFrameTimer !== undefined;
  }

  /** The payloads now deliverable in order, after receiving frame `seq`. @throws CodexChannelError `reorder-overflow`. */
  push(seq: number, payload: Uint8Array): Uint8Array[] {
    if (this.closed || seq < this.next || this.held.has(seq)) return [];
    if (seq - this.next > CODEX_REORDER_WINDOW_FRAMES || this.heldBytes + payload.length > CODEX_REORDER_BUFFER_BYTES) {
      throw new CodexChannelError('reorder-overflow', `data frame ${seq} arrived while ${this.next} was expected, beyond the reorder window`);
    }
    if (seq !== this.next) {
      this.held.set(seq, payload);
      this.heldBytes += payload.length;
      if (this.missingFrameTimer === undefined) this.startMissingFrameTimer();
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
    this.stopMissingFrameTimer();
    // Frames still held wait behind a new missing one, measured from now.
    if (this.held.size > 0) this.startMissingFrameTimer();
    return ready;
  }

  /** Stops the timer and drops what is held; later frames are ignored. */
  close(): void {
    this.closed = true;
    this.stopMissingFrameTimer();
    this.held.clear();
    this.heldBytes = 0;
  }

  private startMissingFrameTimer(): void {
    this.missingFrameTimer = setTimeout(() => {
      this.missingFrameTimer = undefined;
      const missing = this.next;
      const held = this.held.size;
      this.close();
      this.options.onFrameLost(
        new CodexChannelError('frame-lost', `data frame ${missing} never arrived: ${held} later frame${held === 1 ? '' : 's'} waited for it ${this.missingFrameTimeoutMs} ms`),
      );
    }, this.missingFrameTimeoutMs);
    // The socket under the stream keeps the process alive, not this timer.
    this.missingFrameTimer.unref();
  }

  private stopMissingFrameTimer(): void {
    if (this.missingFrameTimer === undefined) return;
    clearTimeout(this.missingFrameTimer);
    this.missingFrameTimer = undefined;
  }
}
