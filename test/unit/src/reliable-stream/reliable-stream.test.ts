import fc from 'fast-check';
import { pipe } from 'it-pipe';
import { describe, expect, it } from 'vitest';
import { MAX_SEGMENT_PAYLOAD_BYTES } from '../../../../src/relay-frame/limits.js';
import { decodeRelayFrame, type RelayFrame } from '../../../../src/relay-frame/relay-frame.js';
import {
  ReliableStream,
  StreamClosedError,
  StreamResetError,
  type ReliableStreamOptions,
  type StreamClock,
} from '../../../../src/reliable-stream/reliable-stream.js';
import { segmentMessage } from '../../../../src/reliable-stream/segmenter.js';
import { DEFAULT_STREAM_OPTIONS } from '../../../../src/reliable-stream/stream-options.js';

// ---------------------------------------------------------------------------------------------
// Test harness: a virtual clock and a simulated link between two streams.

interface FakeTimer {
  readonly id: number;
  readonly at: number;
  readonly callback: () => void;
}

/** Virtual time: timers fire only when the test advances the clock. */
class FakeClock implements StreamClock {
  private time = 0;
  private nextId = 1;
  private readonly heap: FakeTimer[] = [];
  private readonly live = new Set<number>();

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, delayMs: number): unknown {
    const timer = { id: this.nextId++, at: this.time + Math.max(0, delayMs), callback };
    this.live.add(timer.id);
    this.push(timer);
    return timer.id;
  }

  clearTimeout(handle: unknown): void {
    this.live.delete(handle as number);
  }

  /** Number of armed timers. */
  get pendingTimers(): number {
    return this.live.size;
  }

  /** Virtual time of the next armed timer (Infinity if none). */
  nextAt(): number {
    this.dropCancelled();
    return this.heap[0]?.at ?? Number.POSITIVE_INFINITY;
  }

  /** Advances to the next armed timer and runs it. False if none is armed. */
  fireNext(): boolean {
    this.dropCancelled();
    const timer = this.pop();
    if (timer === undefined) return false;
    this.live.delete(timer.id);
    this.time = Math.max(this.time, timer.at);
    timer.callback();
    return true;
  }

  /** Moves time forward without running anything (callers run due timers first). */
  setTime(time: number): void {
    this.time = Math.max(this.time, time);
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && !this.live.has(this.heap[0]!.id)) this.pop();
  }

  private less(a: FakeTimer, b: FakeTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id);
  }

  private push(timer: FakeTimer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): FakeTimer | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && this.less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Lets every pending promise reaction run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Runs virtual time until `done()` holds; fails if nothing is left to run. */
async function runUntil(
  clock: FakeClock,
  done: () => boolean,
  options: { maxSteps?: number; invariant?: () => void; describe?: () => string } = {},
): Promise<void> {
  const maxSteps = options.maxSteps ?? 20_000;
  for (let step = 0; ; step++) {
    await settle();
    options.invariant?.();
    if (done()) return;
    if (step >= maxSteps) throw new Error(`no progress after ${maxSteps} steps ${options.describe?.() ?? ''}`);
    if (!clock.fireNext()) throw new Error(`stalled at t=${clock.now()} ${options.describe?.() ?? ''}`);
  }
}

/** Observes a promise's settlement without awaiting it. */
function track(promise: Promise<unknown>): { readonly settled: boolean } {
  const state = { settled: false };
  promise.then(
    () => (state.settled = true),
    () => (state.settled = true),
  );
  return state;
}

/** Runs every timer due within `ms` of virtual time. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  const target = clock.now() + ms;
  await settle();
  for (let steps = 0; clock.nextAt() <= target; steps++) {
    if (steps > 100_000) throw new Error(`advance: timers keep firing at t=${clock.now()}`);
    clock.fireNext();
    await settle();
  }
  clock.setTime(target);
}

type Side = 0 | 1;
type Fate = 'deliver' | 'drop' | 'duplicate' | 'hold';

interface NetFaults {
  /** Per-frame delay range (ms) while faults are active; `minDelayMs` otherwise. */
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly loss: number;
  readonly duplication: number;
  /** Faults apply before this virtual time only. */
  readonly faultsUntil: number;
  readonly random: () => number;
}

const PERFECT: NetFaults = { minDelayMs: 1, maxDelayMs: 1, loss: 0, duplication: 0, faultsUntil: 0, random: Math.random };

interface LoggedFrame {
  readonly from: Side;
  readonly at: number;
  readonly frame: RelayFrame;
}

/**
 * Two streams joined through a simulated relay. Each side's link can go down (frames to or from
 * it in flight are lost) and come back (the stream is re-attached). Frames are decoded on the way,
 * so every frame the streams emit is checked against the codec.
 */
class SimNet {
  readonly log: LoggedFrame[] = [];
  readonly held: { to: Side; frame: RelayFrame }[] = [];
  readonly errors: string[] = [];
  /** Frames sent, by body type. */
  readonly sentByType = new Map<string, number>();
  /** Test hook: decides what happens to each frame. */
  fate: ((from: Side, frame: RelayFrame) => Fate) | undefined;
  private readonly up: [boolean, boolean] = [false, false];
  private readonly epoch: [number, number] = [0, 0];

  constructor(
    readonly clock: FakeClock,
    readonly streams: readonly [ReliableStream, ReliableStream],
    readonly faults: NetFaults = PERFECT,
    private readonly keepLog = true,
  ) {}

  connect(side: Side): void {
    this.up[side] = true;
    this.epoch[side]++;
    this.streams[side].attach((bytes) => this.transmit(side, bytes));
  }

  disconnect(side: Side): void {
    this.up[side] = false;
    this.epoch[side]++;
    this.streams[side].detach();
  }

  isUp(side: Side): boolean {
    return this.up[side];
  }

  /** Hands a frame to a side directly (used to release held frames). */
  deliver(to: Side, frame: RelayFrame): void {
    this.streams[to].receiveFrame(frame);
  }

  framesFrom(side: Side, type?: RelayFrame['body']['type']): RelayFrame[] {
    return this.log.filter((f) => f.from === side && (type === undefined || f.frame.body.type === type)).map((f) => f.frame);
  }

  private transmit(from: Side, bytes: Uint8Array): boolean {
    if (!this.up[from]) this.errors.push(`side ${from} sent while detached`);
    const decoded = decodeRelayFrame(bytes);
    if (!decoded.ok) {
      this.errors.push(`side ${from} sent an undecodable frame: ${decoded.error.message}`);
      return true;
    }
    const frame = decoded.frame;
    this.sentByType.set(frame.body.type, (this.sentByType.get(frame.body.type) ?? 0) + 1);
    if (this.keepLog) this.log.push({ from, at: this.clock.now(), frame });
    const to: Side = from === 0 ? 1 : 0;
    const fate = this.fate?.(from, frame) ?? 'deliver';
    if (fate === 'drop') return true;
    if (fate === 'hold') {
      this.held.push({ to, frame });
      return true;
    }
    const { faults } = this;
    const faulty = this.clock.now() < faults.faultsUntil;
    if (faulty && faults.random() < faults.loss) return true;
    const copies = fate === 'duplicate' || (faulty && faults.random() < faults.duplication) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = faulty ? faults.minDelayMs + faults.random() * (faults.maxDelayMs - faults.minDelayMs) : faults.minDelayMs;
      const fromEpoch = this.epoch[from];
      const toEpoch = this.epoch[to];
      this.clock.setTimeout(() => {
        // A frame in flight on a socket that went down since is lost.
        if (this.epoch[from] !== fromEpoch || this.epoch[to] !== toEpoch || !this.up[to]) return;
        this.streams[to].receiveFrame(frame);
      }, delay);
    }
    return true;
  }
}

const STREAM_ID = '6c1b1f0e-3a7d-4e55-9b0c-2f8e7d6a5b4c';

function pair(
  clock: FakeClock,
  options: Partial<ReliableStreamOptions> = {},
  faults: NetFaults = PERFECT,
  optionsB: Partial<ReliableStreamOptions> = options,
  keepLog = true,
): { a: ReliableStream; b: ReliableStream; net: SimNet } {
  const base = { streamId: STREAM_ID, clock, initialRtoMs: 100, maxRtoMs: 1_000, ackDelayMs: 10 };
  const a = new ReliableStream({ ...base, role: 'initiator', ...options });
  const b = new ReliableStream({ ...base, role: 'responder', ...optionsB });
  return { a, b, net: new SimNet(clock, [a, b], faults, keepLog) };
}

function collect(stream: ReliableStream): Uint8Array[] {
  const got: Uint8Array[] = [];
  stream.onMessage((message) => got.push(message));
  return got;
}

/** A message whose bytes identify it: `size` bytes derived from `tag`. */
function message(tag: number, size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  let x = (tag * 2_654_435_761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

function expectSameMessages(got: readonly Uint8Array[], sent: readonly Uint8Array[]): void {
  expect(got.length).toBe(sent.length);
  for (let i = 0; i < sent.length; i++) {
    expect(Buffer.from(got[i]!.buffer, got[i]!.byteOffset, got[i]!.byteLength).equals(sent[i]!), `message ${i}`).toBe(true);
  }
}

// ---------------------------------------------------------------------------------------------

describe('reliable stream: delivery', () => {
  it('delivers messages both ways, in order, over a clean link', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock);
    const gotA = collect(a);
    const gotB = collect(b);
    net.connect(0);
    net.connect(1);
    const toB = [message(1, 10), message(2, 0), message(3, 5000)];
    const toA = [message(4, 1), message(5, 70_000)];
    for (const m of toB) await a.send(m);
    for (const m of toA) await b.send(m);
    await runUntil(clock, () => gotA.length === 2 && gotB.length === 3);
    expectSameMessages(gotB, toB);
    expectSameMessages(gotA, toA);
    await advance(clock, 1_000);
    expect(a.stats).toMatchObject({ retransmits: 0, duplicatesDropped: 0, bytesInFlight: 0, messagesSent: 3, messagesDelivered: 2 });
    expect(b.stats).toMatchObject({ retransmits: 0, duplicatesDropped: 0, bytesInFlight: 0, messagesSent: 2, messagesDelivered: 3 });
    expect(net.errors).toEqual([]);
  });

  it('segments a large message and reassembles it from seq - segmentIndex', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock);
    const got = collect(b);
    net.connect(0);
    net.connect(1);
    const big = message(7, 300 * 1024);
    const small = message(8, 3);
    await a.send(small);
    await a.send(big);
    await runUntil(clock, () => got.length === 2);
    expectSameMessages(got, [small, big]);
    const data = net.framesFrom(0, 'data').map((f) => f.body) as Extract<RelayFrame['body'], { type: 'data' }>[];
    expect(data.map((d) => [d.seq, d.segmentIndex, d.segmentCount])).toEqual([
      [0, 0, 1],
      [1, 0, 5],
      [2, 1, 5],
      [3, 2, 5],
      [4, 3, 5],
      [5, 4, 5],
    ]);
    expect(data.slice(1).map((d) => d.payload.length)).toEqual([65_536, 65_536, 65_536, 65_536, 45_056]);
  });

  it('segmentMessage cuts views, never copies, and gives an empty message one segment', () => {
    const m = message(1, 10);
    const parts = segmentMessage(m, 4);
    expect(parts.map((p) => p.length)).toEqual([4, 4, 2]);
    expect(parts.every((p) => p.buffer === m.buffer)).toBe(true);
    expect(segmentMessage(new Uint8Array(0), 4).map((p) => p.length)).toEqual([0]);
  });

  it('retransmits a lost segment on the RTO with exponential backoff', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock);
    const got = collect(b);
    let drops = 3;
    net.fate = (from, frame) => (from === 0 && frame.body.type === 'data' && drops-- > 0 ? 'drop' : 'deliver');
    net.connect(0);
    net.connect(1);
    await runUntil(clock, () => a.stats.framesReceived > 0); // open acknowledged
    const start = clock.now();
    await a.send(message(1, 100));
    await runUntil(clock, () => got.length === 1);
    const sendTimes = net.log.filter((f) => f.from === 0 && f.frame.body.type === 'data').map((f) => f.at - start);
    expect(sendTimes).toEqual([0, 100, 300, 700]);
    expect(a.stats.retransmits).toBe(3);
    expect(got.length).toBe(1);
    await advance(clock, 50);
    expect(a.stats.rtoMs).toBe(100); // back to the initial RTO after progress
  });

  it('drops duplicates and still delivers each message once', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { maxSegmentPayload: 1000, maxMessageBytes: 10_000 });
    const got = collect(b);
    net.fate = () => 'duplicate';
    net.connect(0);
    net.connect(1);
    const sent = [message(1, 2500), message(2, 10), message(3, 999)];
    for (const m of sent) await a.send(m);
    await runUntil(clock, () => got.length === 3);
    await advance(clock, 500);
    expectSameMessages(got, sent);
    expect(b.stats.duplicatesDropped).toBeGreaterThanOrEqual(5);
    expect(b.stats.messagesDelivered).toBe(3);
  });

  it('delivers in order despite reordering, and selectively acks what arrived early', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { maxSegmentPayload: 10, maxMessageBytes: 100 });
    const got = collect(b);
    net.connect(0);
    net.connect(1);
    await runUntil(clock, () => a.stats.framesReceived > 0);
    net.fate = (from, frame) => (from === 0 && frame.body.type === 'data' ? 'hold' : 'deliver');
    const sent = [message(1, 25), message(2, 5), message(3, 10)]; // seqs 0-2, 3, 4
    for (const m of sent) await a.send(m);
    expect(net.held.length).toBe(5);
    const held = net.held.splice(0);
    // Deliver 4, 3, 2, 1 and finally 0.
    for (const { to, frame } of held.slice(1).reverse()) net.deliver(to, frame);
    expect(got.length).toBe(0);
    await advance(clock, 20); // delayed ack from b
    const ack = net.framesFrom(1).at(-1)!;
    expect(ack.body.type).toBe('ack');
    expect(ack.ack).toBe(-1);
    expect(ack.ackBits).toBe(0b11110); // seqs 1..4 = ack + 1 + i for i = 1..4
    net.deliver(held[0]!.to, held[0]!.frame);
    expectSameMessages(got, sent);
    net.fate = undefined;
    await advance(clock, 500);
    expect(a.stats.retransmits).toBe(0); // seqs 1..4 were selectively acked, seq 0 was in time
  });

  it('carries ack state on every frame and sends a standalone ack after the delay', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { ackDelayMs: 25 });
    collect(a);
    collect(b);
    net.connect(0);
    net.connect(1);
    await advance(clock, 10);
    await a.send(message(1, 10));
    const sentAt = clock.now();
    await advance(clock, 100);
    const acks = net.log.filter((f) => f.from === 1 && f.frame.body.type === 'ack' && f.frame.ack === 0);
    expect(acks.length).toBe(1);
    expect(acks[0]!.at - sentAt).toBe(1 + 25); // one hop, then the ack delay
    // b's next data frame carries the ack too.
    await b.send(message(2, 10));
    await advance(clock, 10);
    await a.send(message(3, 10));
    await advance(clock, 100);
    const bData = net.framesFrom(1, 'data');
    expect(bData[0]!.ack).toBe(0);
    expect(net.framesFrom(0, 'data').at(-1)!.ack).toBe(0); // a acknowledges b's seq 0
    expect(net.log.every((f) => Number.isInteger(f.frame.ack) && Number.isInteger(f.frame.ackBits))).toBe(true);
  });

  it('the initiator repeats open (with its payload) until the peer answers', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { openPayload: new Uint8Array([1, 2, 3]) });
    collect(b);
    let opensToDrop = 2;
    net.fate = (from, frame) => (from === 0 && frame.body.type === 'open' && opensToDrop-- > 0 ? 'drop' : 'deliver');
    net.connect(1);
    net.connect(0);
    await advance(clock, 2_000);
    const opens = net.framesFrom(0, 'open');
    expect(opens.length).toBe(3);
    expect(opens.every((f) => f.body.type === 'open' && [...f.body.payload].join() === '1,2,3')).toBe(true);
    expect(a.stats.framesReceived).toBeGreaterThan(0);
  });
});

describe('reliable stream: windows and backpressure', () => {
  it('send() waits while the send window is full and buffered bytes never exceed it', async () => {
    const clock = new FakeClock();
    const window = 64 * 1024;
    const { a, b, net } = pair(clock, { sendWindowBytes: window, maxMessageBytes: 16 * 1024, maxSegmentPayload: 4096 });
    const got = collect(b);
    const sent = Array.from({ length: 20 }, (_, i) => message(i, 16 * 1024));
    const resolved: number[] = [];
    const sends = sent.map((m, i) => a.send(m).then(() => resolved.push(i)));
    await settle();
    // Detached: exactly the window's worth is accepted; the rest waits (nothing copied).
    expect(resolved).toEqual([0, 1, 2, 3]);
    expect(a.stats).toMatchObject({ bytesInFlight: window, sendWaiters: 16 });
    await advance(clock, 10_000);
    expect(resolved.length).toBe(4);
    expect(a.stats.bytesInFlight).toBe(window);

    net.connect(0);
    net.connect(1);
    let maxInFlight = 0;
    await runUntil(clock, () => got.length === 20, {
      invariant: () => {
        maxInFlight = Math.max(maxInFlight, a.stats.bytesInFlight);
        expect(a.stats.bytesInFlight).toBeLessThanOrEqual(window);
      },
    });
    await Promise.all(sends);
    expect(resolved).toEqual(Array.from({ length: 20 }, (_, i) => i)); // FIFO
    expect(maxInFlight).toBe(window);
    expectSameMessages(got, sent);
  });

  it('bounds the segments in flight too', async () => {
    const clock = new FakeClock();
    const { a } = pair(clock, { sendWindowSegments: 3, maxMessageBytes: 10, maxSegmentPayload: 10 });
    const resolved: number[] = [];
    const sends = Array.from({ length: 5 }, (_, i) => a.send(new Uint8Array(0)).then(() => resolved.push(i)));
    await settle();
    expect(resolved).toEqual([0, 1, 2]);
    expect(a.stats).toMatchObject({ segmentsInFlight: 3, sendWaiters: 2 });
    a.reset('done');
    const outcomes = await Promise.allSettled(sends);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
  });

  it('a reader that stops reading stops the sender; receive memory stays bounded', async () => {
    const clock = new FakeClock();
    const options = {
      maxSegmentPayload: 8192,
      maxMessageBytes: 32 * 1024,
      sendWindowBytes: 64 * 1024,
      receiveWindowBytes: 64 * 1024,
      reorderBufferBytes: 16 * 1024,
    };
    const { a, b, net } = pair(clock, options, { ...PERFECT, minDelayMs: 1, maxDelayMs: 5, faultsUntil: 1e12, random: mulberry32(9) });
    const duplex = b.toDuplex();
    net.connect(0);
    net.connect(1);
    const sent = Array.from({ length: 40 }, (_, i) => message(i, (i * 7919) % (32 * 1024)));
    let accepted = 0;
    const writer = (async () => {
      for (const m of sent) {
        await a.send(m);
        accepted++;
      }
    })();
    const bound = options.receiveWindowBytes + options.reorderBufferBytes;
    let maxHeld = 0;
    for (let t = 0; t < 200; t++) {
      await advance(clock, 50);
      maxHeld = Math.max(maxHeld, b.stats.receiveBufferedBytes);
      expect(b.stats.receiveBufferedBytes).toBeLessThanOrEqual(bound);
    }
    expect(accepted).toBeLessThan(40); // the sender is held back by the reader, not buffering
    expect(b.stats.flowControlDropped).toBeGreaterThan(0);
    expect(maxHeld).toBeGreaterThan(0);

    const got: Uint8Array[] = [];
    const reader = (async () => {
      for await (const m of duplex.source) {
        got.push(m);
        if (got.length === 40) break;
      }
    })();
    await runUntil(clock, () => got.length === 40, {
      invariant: () => expect(b.stats.receiveBufferedBytes).toBeLessThanOrEqual(bound),
    });
    await writer;
    await reader;
    expectSameMessages(got, sent);
    // The reader freeing room triggered an immediate `resume`, not a wait for the backed-off RTO.
    expect(net.framesFrom(1, 'resume').length).toBeGreaterThan(0);
  });

  it('rejects a message over maxMessageBytes and inconsistent options', async () => {
    const clock = new FakeClock();
    const { a } = pair(clock, { maxMessageBytes: 100, maxSegmentPayload: 10 });
    await expect(a.send(new Uint8Array(101))).rejects.toBeInstanceOf(RangeError);
    expect(() => new ReliableStream({ streamId: STREAM_ID, maxMessageBytes: 2_000_000 })).toThrow(RangeError);
    expect(() => new ReliableStream({ streamId: STREAM_ID, maxSegmentPayload: MAX_SEGMENT_PAYLOAD_BYTES + 1 })).toThrow(RangeError);
    expect(() => new ReliableStream({ streamId: STREAM_ID, maxSegmentPayload: 1, maxMessageBytes: 1000 })).toThrow(RangeError);
    expect(() => new ReliableStream({ streamId: 'nope' })).toThrow();
    expect(DEFAULT_STREAM_OPTIONS.maxSegmentPayload).toBe(65_536);
  });
});

describe('reliable stream: reconnects', () => {
  it('detach/re-attach: resume, retransmit everything unacked, no loss, no duplicate', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { maxSegmentPayload: 1000, maxMessageBytes: 10_000 });
    const gotA = collect(a);
    const gotB = collect(b);
    net.connect(0);
    net.connect(1);
    const toB = Array.from({ length: 12 }, (_, i) => message(i, 1500 + i));
    const toA = Array.from({ length: 6 }, (_, i) => message(100 + i, 700 * i));
    for (const m of toB.slice(0, 4)) await a.send(m);
    await advance(clock, 3);
    // b's socket drops: frames in flight to it are lost; a keeps sending into the void.
    net.disconnect(1);
    for (const m of toB.slice(4, 8)) await a.send(m);
    for (const m of toA.slice(0, 3)) await b.send(m); // buffered while detached
    await advance(clock, 1_500);
    // Now a's socket drops too (relay restart), and more is sent while both are down.
    net.disconnect(0);
    for (const m of toB.slice(8)) await a.send(m);
    for (const m of toA.slice(3)) await b.send(m);
    await advance(clock, 5_000);
    expect(gotA.length + gotB.length).toBeLessThan(toA.length + toB.length);
    const before = net.log.length;
    net.connect(1);
    net.connect(0);
    await runUntil(clock, () => gotA.length === toA.length && gotB.length === toB.length);
    await advance(clock, 2_000);
    expectSameMessages(gotB, toB);
    expectSameMessages(gotA, toA);
    const afterReconnect = net.log.slice(before);
    expect(afterReconnect[0]!.frame.body).toEqual({ type: 'resume', nextSeq: b.stats.segmentsSent });
    expect(afterReconnect.some((f) => f.from === 0 && f.frame.body.type === 'resume')).toBe(true);
    expect(a.stats.bytesInFlight + b.stats.bytesInFlight).toBe(0);
    expect(net.errors).toEqual([]);
  });

  it('a stale resume (overtaken by later data) only triggers a retransmission', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock);
    const got = collect(b);
    collect(a);
    net.connect(0);
    net.connect(1);
    for (let i = 0; i < 3; i++) await a.send(message(i, 10));
    await runUntil(clock, () => got.length === 3);
    b.receiveFrame({ version: 1, streamId: STREAM_ID, ack: -1, ackBits: 0, body: { type: 'resume', nextSeq: 1 } });
    await advance(clock, 100);
    expect(b.state).toBe('open');
    expect(got.length).toBe(3);
    expect(net.framesFrom(1, 'ack').at(-1)!.ack).toBe(2);
  });
});

describe('reliable stream: reset and close', () => {
  it('reset propagates the reason to both local users and stops all activity', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { sendWindowBytes: 1024, maxMessageBytes: 1024 });
    collect(a);
    const duplexB = b.toDuplex();
    const closedA: (StreamResetError | undefined)[] = [];
    const closedB: (StreamResetError | undefined)[] = [];
    a.onClose((e) => closedA.push(e));
    b.onClose((e) => closedB.push(e));
    net.connect(0);
    net.connect(1);
    await a.send(new Uint8Array(1024));
    const pending = a.send(new Uint8Array(10)); // waits: window full until acked
    const readB = (async () => {
      for await (const _ of duplexB.source) {
        // drain
      }
    })();
    const readBFailed = expect(readB).rejects.toBeInstanceOf(StreamResetError);
    a.reset('disk quota exceeded');
    await expect(pending).rejects.toMatchObject({ name: 'StreamResetError', reason: 'disk quota exceeded', origin: 'local' });
    await advance(clock, 10);
    expect(closedA).toHaveLength(1);
    expect(closedA[0]).toMatchObject({ reason: 'disk quota exceeded', origin: 'local' });
    expect(closedB).toHaveLength(1);
    expect(closedB[0]).toMatchObject({ reason: 'disk quota exceeded', origin: 'peer' });
    await readBFailed;
    await expect(b.send(new Uint8Array(1))).rejects.toMatchObject({ reason: 'disk quota exceeded' });
    await expect(a.close()).rejects.toBeInstanceOf(StreamResetError);
    expect([a.state, b.state]).toEqual(['reset', 'reset']);
    // No timers left, and nothing is sent any more.
    const logged = net.log.length;
    await advance(clock, 60_000);
    expect(net.log.length).toBe(logged);
    expect(clock.pendingTimers).toBe(0);
  });

  it('a reset while detached reaches the peer on re-attach; long reasons are clamped', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock);
    const closedB: (StreamResetError | undefined)[] = [];
    b.onClose((e) => closedB.push(e));
    net.connect(0);
    net.connect(1);
    await advance(clock, 10);
    net.disconnect(0);
    a.reset('x'.repeat(1000));
    expect(a.resetReason?.reason).toBe('x'.repeat(256));
    net.connect(0);
    await advance(clock, 10);
    expect(closedB[0]).toMatchObject({ reason: 'x'.repeat(256), origin: 'peer' });
  });

  it('close(): all data is delivered and acknowledged, both directions end, timers are cleared', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { maxSegmentPayload: 500, maxMessageBytes: 5000 });
    const gotA = collect(a);
    const duplexB = b.toDuplex();
    const endedA: string[] = [];
    a.onEnd(() => endedA.push('end'));
    net.connect(0);
    net.connect(1);
    const toB = [message(1, 1200), message(2, 3)];
    for (const m of toB) await a.send(m);
    const closing = a.close();
    expect(a.state).toBe('closing');
    await expect(a.send(new Uint8Array(1))).rejects.toBeInstanceOf(StreamClosedError);
    // b reads until a's close, answers, then closes its side through the duplex sink.
    const gotB: Uint8Array[] = [];
    const bDone = (async () => {
      for await (const m of duplexB.source) gotB.push(m);
      await duplexB.sink(
        (async function* () {
          yield message(3, 10);
        })(),
      );
    })();
    const closed = track(closing);
    const bFinished = track(bDone);
    await runUntil(clock, () => closed.settled && bFinished.settled);
    await closing;
    await bDone;
    expectSameMessages(gotB, toB);
    expectSameMessages(gotA, [message(3, 10)]);
    expect(endedA).toEqual(['end']);
    expect([a.state, b.state]).toEqual(['closed', 'closed']);
    // The close frames took one seq each.
    expect(net.framesFrom(0, 'close').length).toBe(1);
    expect(net.framesFrom(1, 'ack').some((f) => f.ack === 4)).toBe(true); // seqs 0-2 data, 3 data, 4 = close
    await advance(clock, 60_000);
    expect(clock.pendingTimers).toBe(0);
  });

  it('half-close: the peer may go on sending after our closeWrite', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock);
    const gotA = collect(a);
    const gotB = collect(b);
    let bEnded = false;
    b.onEnd(() => (bEnded = true));
    net.connect(0);
    net.connect(1);
    await a.send(message(1, 10));
    const writeClosed = a.closeWrite();
    const writeDone = track(writeClosed);
    await runUntil(clock, () => bEnded && writeDone.settled);
    await writeClosed;
    expect(a.writable).toBe(false);
    expect(b.peerClosed).toBe(true);
    expect(b.state).toBe('closing');
    for (let i = 0; i < 5; i++) await b.send(message(10 + i, 100));
    await runUntil(clock, () => gotA.length === 5);
    const bClosed = b.close();
    let done = false;
    void bClosed.then(() => (done = true));
    await runUntil(clock, () => done);
    expect([a.state, b.state]).toEqual(['closed', 'closed']);
    expectSameMessages(gotB, [message(1, 10)]);
  });

  it('close handshake survives lost close frames and lost acks', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock);
    collect(a);
    collect(b);
    let closesToDrop = 2;
    let acksToDrop = 2;
    net.connect(0);
    net.connect(1);
    await a.send(message(1, 10));
    await advance(clock, 50);
    net.fate = (_from, frame) => {
      if (frame.body.type === 'close' && closesToDrop-- > 0) return 'drop';
      if (frame.body.type === 'ack' && acksToDrop-- > 0) return 'drop';
      return 'deliver';
    };
    let done = 0;
    void a.close().then(() => done++);
    void b.close().then(() => done++);
    await runUntil(clock, () => done === 2);
    expect([a.state, b.state]).toEqual(['closed', 'closed']);
    expect(a.stats.retransmits + b.stats.retransmits).toBeGreaterThan(0);
  });

  it('close() resets the stream if the peer never closes within closeTimeoutMs', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { closeTimeoutMs: 5_000 });
    collect(a);
    collect(b);
    net.connect(0);
    net.connect(1);
    const closing = a.close();
    const failed = expect(closing).rejects.toMatchObject({ reason: 'close timed out' });
    await advance(clock, 6_000);
    await failed;
    expect(b.state).toBe('reset');
  });

  it('protocol violations from the peer reset the stream with a reason', async () => {
    const clock = new FakeClock();
    const { b } = pair(clock);
    const data = (seq: number, segmentIndex: number, segmentCount: number): RelayFrame => ({
      version: 1,
      streamId: STREAM_ID,
      ack: -1,
      ackBits: 0,
      body: { type: 'data', seq, segmentIndex, segmentCount, payload: new Uint8Array(1) },
    });
    b.receiveFrame(data(0, 0, 2));
    b.receiveFrame(data(1, 0, 1)); // a new message while the previous is incomplete
    expect(b.resetReason?.reason).toMatch(/^protocol violation: seq 1 is segment 0\/1, expected 1\/2/);

    const { b: b2 } = pair(new FakeClock());
    b2.receiveFrame({ version: 1, streamId: STREAM_ID, ack: 5, ackBits: 0, body: { type: 'ack' } });
    expect(b2.resetReason?.reason).toMatch(/ack 5 for a seq never sent/);

    const { b: b3 } = pair(new FakeClock());
    b3.receiveFrame({ ...data(0, 0, 1), streamId: '00000000-0000-0000-0000-000000000000' });
    expect(b3.state).toBe('open');
    expect(b3.stats.framesIgnored).toBe(1);
  });
});

describe('reliable stream: ByteDuplex', () => {
  it('works with it-pipe: an echo peer returns every message as one chunk, in order', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock, { maxSegmentPayload: 4096 });
    net.connect(0);
    net.connect(1);
    const echo = b.toDuplex();
    const echoDone = pipe(echo, echo); // source -> sink
    const sent = Array.from({ length: 30 }, (_, i) => message(i, i * 1000));
    const duplexA = a.toDuplex();
    const got: Uint8Array[] = [];
    const clientDone = pipe(
      async function* () {
        yield* sent;
      },
      duplexA,
      async (source) => {
        for await (const chunk of source) got.push(chunk);
      },
    );
    let finished = false;
    void Promise.all([echoDone, clientDone]).then(() => (finished = true));
    await runUntil(clock, () => finished && a.state === 'closed' && b.state === 'closed');
    expectSameMessages(got, sent);
  });

  it('the sink accepts Uint8ArrayList-like chunks (what libp2p-noise writes) and resets on a failing source', async () => {
    const clock = new FakeClock();
    const { a, b, net } = pair(clock);
    const got = collect(b);
    net.connect(0);
    net.connect(1);
    const duplex = a.toDuplex();
    const listLike = { subarray: () => new Uint8Array([1, 2, 3]) };
    const sinkDone = duplex.sink(
      (async function* () {
        yield listLike as unknown as Uint8Array;
        throw new Error('encryption failed');
      })(),
    );
    await expect(sinkDone).rejects.toThrow('encryption failed');
    expect(a.resetReason?.reason).toBe('writer_failed'); // fixed: the relay reads reset frames
    expect(() => a.toDuplex()).toThrow();
    expect(() => a.onMessage(() => {})).toThrow();
    await advance(clock, 10);
    expect(got.map((m) => [...m])).toEqual([[1, 2, 3]]);
    expect(b.resetReason?.origin).toBe('peer');
  });
});

describe('reliable stream: real timers', () => {
  it('runs on the system clock with unref timers and clears them on close', async () => {
    const a = new ReliableStream({ streamId: STREAM_ID, role: 'initiator', initialRtoMs: 20, ackDelayMs: 1 });
    const b = new ReliableStream({ streamId: STREAM_ID, ackDelayMs: 1 });
    const deliver = (to: ReliableStream) => (bytes: Uint8Array) => {
      setTimeout(() => {
        const decoded = decodeRelayFrame(bytes);
        if (decoded.ok) to.receiveFrame(decoded.frame);
      }, 1);
    };
    const got = collect(b);
    collect(a);
    b.attach(deliver(a));
    a.attach(deliver(b));
    await a.send(message(1, 200_000));
    await Promise.all([a.close(), b.close()]);
    expect(got.length).toBe(1);
    expect([a.state, b.state]).toEqual(['closed', 'closed']);
  });
});

// ---------------------------------------------------------------------------------------------
// Property: two streams over a lossy, duplicating, reordering link with reconnects.

function mulberry32(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Window/segment profiles: the default 64 KiB segments down to tiny ones that stress the windows. */
const PROFILES: readonly Partial<ReliableStreamOptions>[] = [
  { maxSegmentPayload: 65_536, maxMessageBytes: 512 * 1024, sendWindowBytes: 768 * 1024, receiveWindowBytes: 512 * 1024, reorderBufferBytes: 256 * 1024, sendWindowSegments: 64, receiveWindowSegments: 64 },
  { maxSegmentPayload: 16_384, maxMessageBytes: 512 * 1024, sendWindowBytes: 512 * 1024, receiveWindowBytes: 512 * 1024, reorderBufferBytes: 64 * 1024, sendWindowSegments: 40, receiveWindowSegments: 40 },
  { maxSegmentPayload: 1000, maxMessageBytes: 8000, sendWindowBytes: 12_000, receiveWindowBytes: 8000, reorderBufferBytes: 2000, sendWindowSegments: 16, receiveWindowSegments: 12 },
  { maxSegmentPayload: 97, maxMessageBytes: 1000, sendWindowBytes: 1000, receiveWindowBytes: 1000, reorderBufferBytes: 300, sendWindowSegments: 11, receiveWindowSegments: 5 },
];

const sizeArb = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 0, max: 3000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 100_000, max: 450_000 }) },
);

const scheduleArb = fc.record({
  seed: fc.integer(),
  profile: fc.integer({ min: 0, max: PROFILES.length - 1 }),
  loss: fc.constantFrom(0, 0.05, 0.2, 0.4),
  duplication: fc.constantFrom(0, 0.1, 0.3),
  maxDelayMs: fc.integer({ min: 1, max: 60 }),
  outages: fc.array(
    fc.record({ side: fc.constantFrom(0, 1, 2), at: fc.integer({ min: 0, max: 600 }), downFor: fc.integer({ min: 1, max: 400 }) }),
    { maxLength: 5 },
  ),
  slowReader: fc.boolean(),
  sizesA: fc.array(sizeArb, { maxLength: 16 }),
  sizesB: fc.array(sizeArb, { maxLength: 16 }),
});

type Schedule = typeof scheduleArb extends fc.Arbitrary<infer T> ? T : never;

const patternBytes = message(12345, 1024 * 1024);

/** Distinct, recognisable messages as views of a shared pattern (no per-run allocation). */
function workload(sizes: readonly number[], maxMessageBytes: number, salt: number): Uint8Array[] {
  return sizes.map((raw, i) => {
    const size = raw % (maxMessageBytes + 1);
    const offset = ((i + 1) * 7919 + salt * 104_729) % (patternBytes.length - size + 1);
    return patternBytes.subarray(offset, offset + size);
  });
}

interface RunStats {
  retransmits: number;
  duplicates: number;
  flowControlDrops: number;
  outOfWindowDrops: number;
  resumes: number;
  outagesDuringTransfer: number;
  runsWithOutage: number;
  bigMessages: number;
  bytes: number;
  virtualMs: number;
}

async function runSchedule(schedule: Schedule, totals: RunStats): Promise<void> {
  const clock = new FakeClock();
  const random = mulberry32(schedule.seed);
  const profile = PROFILES[schedule.profile]!;
  const faults: NetFaults = {
    minDelayMs: 1,
    maxDelayMs: 1 + schedule.maxDelayMs,
    loss: schedule.loss,
    duplication: schedule.duplication,
    faultsUntil: 2_000,
    random,
  };
  const options = { ...profile, initialRtoMs: 40, maxRtoMs: 320, ackDelayMs: 5, closeTimeoutMs: 1e9 };
  const { a, b, net } = pair(clock, options, faults, options, false);
  const toB = workload(schedule.sizesA, profile.maxMessageBytes!, 1);
  const toA = workload(schedule.sizesB, profile.maxMessageBytes!, 2);

  // a: event API, plain send + close(). b: ByteDuplex, sink fed by a generator, slow reader.
  const gotA: Uint8Array[] = [];
  a.onMessage((m) => gotA.push(m));
  const duplexB = b.toDuplex();
  const gotB: Uint8Array[] = [];
  let failure: unknown;
  let aDone = false;
  let bWriterDone = false;
  let bReaderDone = false;
  void (async () => {
    for (const m of toB) await a.send(m);
    await a.close();
    aDone = true;
  })().catch((error) => (failure ??= error));
  void duplexB
    .sink(
      (async function* () {
        yield* toA;
      })(),
    )
    .then(() => (bWriterDone = true))
    .catch((error) => (failure ??= error));
  void (async () => {
    for await (const m of duplexB.source) {
      gotB.push(m);
      if (schedule.slowReader && random() < 0.3) await clock.sleep(random() * 50);
    }
    bReaderDone = true;
  })().catch((error) => (failure ??= error));

  let outages = 0;
  for (const outage of schedule.outages) {
    const sides: Side[] = outage.side === 2 ? [0, 1] : [outage.side as Side];
    clock.setTimeout(() => {
      if (b.state !== 'closed') outages++;
      for (const side of sides) if (net.isUp(side)) net.disconnect(side);
    }, outage.at);
    clock.setTimeout(() => {
      for (const side of sides) if (!net.isUp(side)) net.connect(side);
    }, outage.at + outage.downFor);
  }
  net.connect(1);
  net.connect(0);

  const sendBound = options.sendWindowBytes!;
  const receiveBound = options.receiveWindowBytes! + options.reorderBufferBytes!;
  await runUntil(clock, () => failure !== undefined || (aDone && bWriterDone && bReaderDone && b.state === 'closed'), {
    invariant: () => {
      for (const s of [a, b]) {
        const stats = s.stats;
        if (stats.bytesInFlight > sendBound) throw new Error(`send buffer ${stats.bytesInFlight} > ${sendBound}`);
        if (stats.receiveBufferedBytes > receiveBound) throw new Error(`receive buffer ${stats.receiveBufferedBytes} > ${receiveBound}`);
      }
    },
    describe: () =>
      JSON.stringify({ a: a.state, b: b.state, gotA: gotA.length, gotB: gotB.length, aDone, bWriterDone, bReaderDone, sa: a.stats, sb: b.stats }),
  });
  if (failure !== undefined) throw failure;
  expect(net.errors).toEqual([]);
  expectSameMessages(gotB, toB);
  expectSameMessages(gotA, toA);
  expect([a.state, b.state]).toEqual(['closed', 'closed']);
  totals.retransmits += a.stats.retransmits + b.stats.retransmits;
  totals.duplicates += a.stats.duplicatesDropped + b.stats.duplicatesDropped;
  totals.flowControlDrops += a.stats.flowControlDropped + b.stats.flowControlDropped;
  totals.outOfWindowDrops += a.stats.outOfWindowDropped + b.stats.outOfWindowDropped;
  totals.resumes += net.sentByType.get('resume') ?? 0;
  totals.outagesDuringTransfer += outages;
  totals.runsWithOutage += outages > 0 ? 1 : 0;
  totals.bigMessages += [...toA, ...toB].filter((m) => m.length >= 100_000).length;
  totals.bytes += toA.reduce((n, m) => n + m.length, 0) + toB.reduce((n, m) => n + m.length, 0);
  totals.virtualMs += clock.now();
}

describe('reliable stream: property over a faulty link', () => {
  it('delivers exactly the sent messages both ways under 1,000 random fault schedules', async () => {
    const totals: RunStats = {
      retransmits: 0,
      duplicates: 0,
      flowControlDrops: 0,
      outOfWindowDrops: 0,
      resumes: 0,
      outagesDuringTransfer: 0,
      runsWithOutage: 0,
      bigMessages: 0,
      bytes: 0,
      virtualMs: 0,
    };
    let runs = 0;
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(scheduleArb, async (schedule) => {
        runs++;
        await runSchedule(schedule, totals);
      }),
      { numRuns: 1_000 },
    );
    const elapsed = performance.now() - started;
    expect(runs).toBeGreaterThanOrEqual(1_000);
    // The faults really happened, and reconnects hit transfers in progress.
    expect(totals.retransmits).toBeGreaterThan(1_000);
    expect(totals.duplicates).toBeGreaterThan(1_000);
    expect(totals.runsWithOutage).toBeGreaterThan(300);
    expect(totals.resumes).toBeGreaterThan(300);
    expect(totals.bigMessages).toBeGreaterThan(100);
    console.log(
      `faulty-link property: ${runs} schedules, ${(totals.bytes / 1024 / 1024).toFixed(1)} MiB delivered ` +
        `(${totals.bigMessages} messages of 100-450 KiB); ${totals.runsWithOutage} runs had ` +
        `${totals.outagesDuringTransfer} link outages mid-transfer, ${totals.resumes} resume frames; ` +
        `${totals.retransmits} retransmits, ${totals.duplicates} duplicates dropped, ` +
        `${totals.flowControlDrops} flow-control drops, ${totals.outOfWindowDrops} out-of-window drops; ` +
        `${(totals.virtualMs / 1000).toFixed(0)} s virtual, ${(elapsed / 1000).toFixed(1)} s real`,
    );
  });
});
