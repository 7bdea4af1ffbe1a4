import net from 'node:net';

/** `upstream`: from the dialling side (an agent or client) to the target (the relay); `downstream`: back. */
export type FaultDirection = 'upstream' | 'downstream';
export type FaultDirections = FaultDirection | 'both';

/** Faults applied to every byte forwarded; changeable at any time with {@link FaultProxy.configure}. */
export interface FaultSettings {
  /** Each chunk is held this long before it is forwarded (order is kept). */
  delayMs: number;
  /** Forwarding rate per connection and direction in bytes per second; 0 = unlimited. */
  bytesPerSecond: number;
  /** New connections are accepted and destroyed at once (the target looks unreachable). */
  refuseNew: boolean;
  /** New connections are accepted and never forwarded either way (a black hole: a connect that hangs). */
  blackholeNew: boolean;
}

/** How one direction of a connection forwards. */
type PipeMode = 'forward' | 'drop' | 'stall';

/** One proxied connection: the dialler's socket and the one to the target. */
export interface FaultConnection {
  readonly id: number;
  /** When the proxy accepted it (ms since the epoch). */
  readonly openedAt: number;
  /** How each direction forwards now. */
  readonly modes: { upstream: 'forward' | 'drop' | 'stall'; downstream: 'forward' | 'drop' | 'stall' };
  /** Destroys both sockets (RST-like: both ends see the connection go). */
  cut(): void;
  /**
   * Half-open: bytes in the given direction(s) vanish and the connection is never closed by the
   * proxy, even when one side closes (the other side only learns through its own timeouts, as
   * behind a NAT that dropped its mapping). Permanent for this connection.
   */
  halfOpen(directions?: FaultDirections): void;
  /** Stops forwarding (bytes are held, and the sender is paused by TCP backpressure) until {@link heal}. */
  stall(directions?: FaultDirections): void;
  /** Ends a stall. */
  heal(): void;
  readonly closed: boolean;
  /** Bytes forwarded so far per direction. */
  forwarded(direction: FaultDirection): number;
}

export interface FaultProxy {
  readonly port: number;
  /** `ws://127.0.0.1:PORT` */
  readonly url: string;
  /** Live connections, oldest first. */
  connections(): FaultConnection[];
  /** Connections accepted since the proxy started. */
  readonly accepted: number;
  configure(settings: Partial<FaultSettings>): void;
  readonly settings: Readonly<FaultSettings>;
  /** Cuts every live connection; new ones are still accepted (unless `refuseNew`). */
  cutAll(): void;
  /** Half-opens every live connection. */
  halfOpenAll(directions?: FaultDirections): void;
  stallAll(directions?: FaultDirections): void;
  healAll(): void;
  /** Resolves once a connection is accepted after `since` (default: now). */
  nextConnection(timeoutMs?: number): Promise<FaultConnection>;
  close(): Promise<void>;
}

/** Bytes queued inside the proxy per direction before the sending socket is paused. */
const MAX_QUEUED_BYTES = 1024 * 1024;

interface QueuedChunk {
  releaseAt: number;
  data: Buffer;
}

/** One direction of one connection: reads `from`, writes `to`, applying the faults. */
class Pipe {
  mode: PipeMode = 'forward';
  forwarded = 0;
  private readonly queue: QueuedChunk[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private waitingDrain = false;
  /** Token bucket for throttling. */
  private tokens = 0;
  private tokensAt = Date.now();

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly settings: () => FaultSettings,
  ) {
    from.on('data', (data: Buffer) => this.onData(data));
  }

  private onData(data: Buffer): void {
    if (this.mode === 'drop') return;
    this.queue.push({ releaseAt: Date.now() + this.settings().delayMs, data });
    this.queuedBytes += data.length;
    if (this.queuedBytes > MAX_QUEUED_BYTES) this.from.pause();
    this.pump();
  }

  setMode(mode: PipeMode): void {
    if (this.mode === 'drop') return; // permanent
    this.mode = mode;
    if (mode === 'drop') {
      this.queue.length = 0;
      this.queuedBytes = 0;
      this.from.resume(); // keep reading (and discarding): the sender sees no backpressure
    } else if (mode === 'forward') {
      this.pump();
      if (this.queuedBytes <= MAX_QUEUED_BYTES / 2) this.from.resume();
    } else {
      this.from.pause();
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
  }

  pump(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.mode !== 'forward' || this.waitingDrain || this.to.destroyed) return;
    const { bytesPerSecond } = this.settings();
    const now = Date.now();
    if (bytesPerSecond > 0) {
      // Refill, capped at 100 ms worth (and at least one 16 KiB write) of burst.
      const cap = Math.max(16 * 1024, bytesPerSecond / 10);
      this.tokens = Math.min(cap, this.tokens + ((now - this.tokensAt) * bytesPerSecond) / 1000);
    }
    this.tokensAt = now;
    while (this.queue.length > 0) {
      const head = this.queue[0]!;
      if (head.releaseAt > now) {
        this.timer = setTimeout(() => this.pump(), head.releaseAt - now);
        return;
      }
      let data = head.data;
      if (bytesPerSecond > 0) {
        const allowed = Math.floor(this.tokens);
        if (allowed <= 0) {
          this.timer = setTimeout(() => this.pump(), Math.max(5, Math.ceil(((1 - this.tokens) * 1000) / bytesPerSecond)));
          return;
        }
        if (data.length > allowed) {
          head.data = data.subarray(allowed);
          data = data.subarray(0, allowed);
        } else {
          this.queue.shift();
        }
        this.tokens -= data.length;
      } else {
        this.queue.shift();
      }
      this.queuedBytes -= data.length;
      this.forwarded += data.length;
      const more = this.to.write(data);
      if (this.queuedBytes <= MAX_QUEUED_BYTES / 2 && this.from.isPaused()) this.from.resume();
      if (!more) {
        this.waitingDrain = true;
        this.to.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
        return;
      }
    }
  }
}

/**
 * A loopback TCP proxy in front of `127.0.0.1:targetPort` that injects link faults: latency,
 * throttling, cuts (both sockets destroyed), half-open connections (bytes vanish, no close is
 * ever passed on) and stalls (forwarding paused, healable). Settings apply to live connections at
 * once; per-connection faults through {@link FaultProxy.connections}.
 */
export async function startFaultProxy(targetPort: number, initial: Partial<FaultSettings> = {}): Promise<FaultProxy> {
  const settings: FaultSettings = { delayMs: 0, bytesPerSecond: 0, refuseNew: false, blackholeNew: false, ...initial };
  const live = new Map<number, FaultConnection & { destroy(): void; repump(): void }>();
  const waiters: Array<(connection: FaultConnection) => void> = [];
  let nextId = 1;
  let accepted = 0;

  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    if (settings.refuseNew) {
      client.destroy();
      return;
    }
    accepted++;
    const id = nextId++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    upstream.on('error', () => undefined);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const up = new Pipe(client, upstream, () => settings);
    const down = new Pipe(upstream, client, () => settings);
    let closed = false;
    const destroy = () => {
      if (closed) return;
      closed = true;
      up.stop();
      down.stop();
      client.destroy();
      upstream.destroy();
      live.delete(id);
    };
    const halfOpen = () => up.mode === 'drop' || down.mode === 'drop';
    // A close on one side is passed on (as a cut) unless the connection is half-open, in which
    // case the other side keeps its socket until it notices by itself.
    const onSideClosed = (other: net.Socket) => () => {
      if (!halfOpen()) return destroy();
      if (other.destroyed) destroy();
    };
    client.on('close', onSideClosed(upstream));
    upstream.on('close', onSideClosed(client));
    // Half-closes (FIN) are passed on as such when forwarding.
    client.on('end', () => {
      if (!halfOpen()) upstream.end();
    });
    upstream.on('end', () => {
      if (!halfOpen()) client.end();
    });
    const select = (directions: FaultDirections): Pipe[] =>
      directions === 'both' ? [up, down] : directions === 'upstream' ? [up] : [down];
    const connection = {
      id,
      openedAt: Date.now(),
      get modes() {
        return { upstream: up.mode, downstream: down.mode };
      },
      cut: destroy,
      destroy,
      repump() {
        up.pump();
        down.pump();
      },
      halfOpen(directions: FaultDirections = 'both') {
        for (const pipe of select(directions)) pipe.setMode('drop');
      },
      stall(directions: FaultDirections = 'both') {
        for (const pipe of select(directions)) pipe.setMode('stall');
      },
      heal() {
        for (const pipe of [up, down]) pipe.setMode('forward');
      },
      get closed() {
        return closed;
      },
      forwarded: (direction: FaultDirection) => (direction === 'upstream' ? up.forwarded : down.forwarded),
    };
    live.set(id, connection);
    if (settings.blackholeNew) connection.halfOpen('both');
    for (const waiter of waiters.splice(0)) waiter(connection);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const all = () => [...live.values()];
  return {
    port,
    url: `ws://127.0.0.1:${port}`,
    connections: all,
    get accepted() {
      return accepted;
    },
    get settings() {
      return { ...settings };
    },
    configure(update) {
      Object.assign(settings, update);
      // A shorter delay or a higher rate applies to what is already queued too.
      for (const connection of all()) connection.repump();
    },
    cutAll() {
      for (const connection of all()) connection.cut();
    },
    halfOpenAll(directions = 'both') {
      for (const connection of all()) connection.halfOpen(directions);
    },
    stallAll(directions = 'both') {
      for (const connection of all()) connection.stall(directions);
    },
    healAll() {
      for (const connection of all()) connection.heal();
    },
    nextConnection(timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('fault proxy: no new connection in time')), timeoutMs);
        waiters.push((connection) => {
          clearTimeout(timer);
          resolve(connection);
        });
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const connection of all()) connection.destroy();
        server.close(() => resolve());
      }),
  };
}
