/**
 * An ordered, reliable duplex of byte chunks in the shape `it-pipe` and `@chainsafe/libp2p-noise`
 * 16.x consume (`@libp2p/interface` 2.x `Duplex`). The relay's reliable stream exposes one per
 * stream; the Noise channel secures it. Chunk boundaries carry no meaning: whoever needs message
 * boundaries frames its own messages.
 */
export interface ByteDuplex {
  source: AsyncIterable<Uint8Array>;
  sink: (source: AsyncIterable<Uint8Array>) => Promise<void>;
  /**
   * Optional: a writable buffer of `length` bytes that this duplex's sink can send without copying
   * it again (the reliable stream hands out buffers with room for the relay frame header in front).
   * A writer that fills such a buffer and passes it, unmodified afterwards, as one chunk to the sink
   * saves a copy per chunk; any other Uint8Array works too.
   */
  allocateChunk?: (length: number) => Uint8Array;
}
