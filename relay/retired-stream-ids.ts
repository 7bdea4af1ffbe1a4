/** The newest N stream ids that ended; a new `open` reusing one is refused. */
export class RetiredStreamIds {
  private readonly ids = new Set<string>();

  constructor(private readonly capacity: number) {}

  add(streamId: string): void {
    if (this.capacity <= 0) return;
    this.ids.delete(streamId);
    this.ids.add(streamId);
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value!);
  }

  has(streamId: string): boolean {
    return this.ids.has(streamId);
  }
}
