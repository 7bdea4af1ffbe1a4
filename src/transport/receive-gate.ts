/**
 * Receive-side backpressure for a transport that reads a byte stream: while paused, the stream is
 * paused (so the peer's writes block in TCP or the pipe) and the few messages already parsed from
 * the last read are held here, then delivered in order on resume. A message is never dropped.
 */
export class ReceiveGate<T = string> {
  private paused = false;
  private held: T[] = [];

  constructor(
    private readonly deliver: (message: T) => void,
    private readonly source: { pause(): void; resume(): void },
  ) {}

  get isPaused(): boolean {
    return this.paused;
  }

  /** A message parsed from the stream: delivered now, or held while paused. */
  accept(message: T): void {
    if (this.paused || this.held.length > 0) this.held.push(message);
    else this.deliver(message);
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.source.pause();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    // A listener may pause again while the held messages are delivered: stop there.
    while (this.held.length > 0 && !this.paused) this.deliver(this.held.shift()!);
    if (!this.paused) this.source.resume();
  }
}
