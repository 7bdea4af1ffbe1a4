/**
 * An ordered, reliable duplex of byte chunks in the shape `it-pipe` and `@chainsafe/libp2p-noise`
 * 16.x consume (`@libp2p/interface` 2.x `Duplex`). The relay's reliable stream exposes one per
 * stream; the Noise channel secures it. Chunk boundaries carry no meaning: whoever needs message
 * boundaries frames its own messages.
 */
export interface ByteDuplex {
  source: AsyncIterable<Uint8Array>;
  sink: (source: AsyncIterable<Uint8Array>) => Promise<void>;
}
