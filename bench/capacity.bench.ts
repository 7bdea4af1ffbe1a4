/**
 * Scenario 4: relay capacity. One relay process (the built CLI); N executors simulated in a second
 * process (bench/capacity-sim.ts: registered WebSockets that accept streams and echo data frames);
 * the clients in this process, one WebSocket per environment, M streams spread evenly over them.
 *
 * - Memory: the relay's RSS (Linux /proc VmRSS) after start, after the N registrations, after the
 *   client sockets, after the M stream opens: RSS per executor, per client socket and per stream.
 * - Saturation: a closed loop of 1 KiB data frames (a fixed number in flight, round-robin over all
 *   streams), each echoed by its executor: frames routed per second (2 per echo) and the relay's
 *   CPU share. On 2 cores the three processes share the CPU: the figure is what the relay sustained
 *   while the endpoints, simulated as cheaply as possible, took their part.
 * - Added latency: open-loop echoes paced at 10%, 50% and 90% of the saturating rate; the p99
 *   round trip through the relay (two relay traversals) against the same paced echo over plain
 *   WebSockets to the simulator (no relay).
 * Every phase is bounded in count and time.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { clientConnectPath } from '../src/relay-control/relay-endpoints.js';
import { DATA_PAYLOAD_OFFSET, encodeRelayFrame, peekHeader } from '../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../src/relay-frame/limits.js';
import { benchNumber, quantile, type BenchFigure } from './bench-result.js';
import { cpuMs, rssBytes, startCli } from './cli-process.js';

const EXECUTORS = benchNumber('BENCH_CAPACITY_EXECUTORS', 1000, 100);
const STREAMS = benchNumber('BENCH_CAPACITY_STREAMS', 10_000, 1000);
const PHASE_MS = benchNumber('BENCH_CAPACITY_PHASE_MS', 3000, 1000);
const PAYLOAD_BYTES = 1024;
const IN_FLIGHT = 256;
const zeroMask = (mask: Uint8Array): void => void mask.fill(0);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Stream {
  socket: WebSocket;
  template: Buffer;
}

/** Round trips in flight: id -> send time (ns). The id is the payload's first 8 bytes. */
class EchoMeter {
  private nextId = 1;
  readonly sent = new Map<number, bigint>();
  readonly rtts: number[] = [];
  echoes = 0;
  onEcho: (() => void) | undefined;

  stamp(frame: Buffer, offset: number): void {
    const id = this.nextId++;
    frame.writeDoubleBE(id, offset);
    this.sent.set(id, process.hrtime.bigint());
  }

  receive(data: Buffer, offset: number, record: boolean): void {
    if (data.length < offset + 8) return;
    const id = data.readDoubleBE(offset);
    const at = this.sent.get(id);
    if (at === undefined) return;
    this.sent.delete(id);
    this.echoes++;
    if (record) this.rtts.push(Number(process.hrtime.bigint() - at) / 1e6);
    this.onEcho?.();
  }
}

function connect(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, perMessageDeflate: false, generateMask: zeroMask });
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

function ask(child: ChildProcess, command: object, timeoutMs: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`simulator did not answer ${JSON.stringify(command)} in ${timeoutMs} ms`)), timeoutMs);
    child.once('message', (reply: Record<string, unknown>) => {
      clearTimeout(timer);
      if (reply.ok) resolve(reply);
      else reject(new Error(String(reply.error)));
    });
    child.send(command);
  });
}

/** Sends round-robin over `targets` at `rate` echoes/s (or closed-loop with `inFlight` when rate is 0) for `ms`. */
async function drive(
  meter: EchoMeter,
  targets: readonly Stream[],
  offset: number,
  ms: number,
  rate: number,
): Promise<{ echoes: number; seconds: number }> {
  let next = 0;
  const send = (): void => {
    const target = targets[next++ % targets.length]!;
    if (target.socket.readyState !== WebSocket.OPEN) return;
    const frame = Buffer.from(target.template);
    meter.stamp(frame, offset);
    target.socket.send(frame);
  };
  meter.sent.clear();
  const echoesBefore = meter.echoes;
  const start = process.hrtime.bigint();
  const elapsedMs = () => Number(process.hrtime.bigint() - start) / 1e6;
  if (rate === 0) {
    let running = true;
    meter.onEcho = () => {
      if (running) send();
    };
    for (let i = 0; i < IN_FLIGHT; i++) send();
    await sleep(ms);
    running = false;
    meter.onEcho = undefined;
  } else {
    let sentCount = 0;
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const elapsed = elapsedMs();
        if (elapsed >= ms) {
          clearInterval(timer);
          resolve();
          return;
        }
        // At most two ticks' worth per tick: a sender whose timer fired late does not burst to
        // catch up (that would measure its own burst, not the relay); the achieved rate is reported.
        const due = Math.min(Math.floor((rate * elapsed) / 1000), sentCount + Math.ceil(rate / 500));
        // Bounded: past 50,000 unanswered the system is overloaded; stop adding.
        while (sentCount < due && meter.sent.size < 50_000) {
          send();
          sentCount++;
        }
      }, 1);
    });
  }
  const seconds = elapsedMs() / 1000;
  await sleep(Math.min(500, ms / 4)); // let the tail drain (not counted in the rate)
  return { echoes: meter.echoes - echoesBefore, seconds };
}

export async function run(): Promise<BenchFigure[]> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-capacity-'));
  const token = `capacity-token-${Date.now()}-0123456789`;
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const relay = await startCli(['relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--bindings-file', path.join(dir, 'bindings')]);
  const simulator = fork(fileURLToPath(new URL('./capacity-sim.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const sockets: WebSocket[] = [];
  try {
    const pid = relay.child.pid!;
    await sleep(1000);
    const rssStart = await rssBytes(pid);

    await ask(simulator, { type: 'executors', relayUrl: relay.firstLine, token, count: EXECUTORS }, 120_000);
    await sleep(500);
    const rssExecutors = await rssBytes(pid);

    // One client socket per environment, streams spread evenly.
    const meter = new EchoMeter();
    const offset = DATA_PAYLOAD_OFFSET;
    let recording = false;
    const pendingOpens = new Map<string, () => void>();
    const onClientFrame = (data: Buffer): void => {
      const peeked = peekHeader(data);
      if (!peeked.ok) return;
      if (peeked.header.type === 'open') {
        const done = pendingOpens.get(peeked.header.streamId);
        pendingOpens.delete(peeked.header.streamId);
        done?.();
      } else if (peeked.header.type === 'data') {
        meter.receive(data, offset, recording);
      } else if (peeked.header.type === 'reset') {
        console.error(`  stream reset by the relay: ${peeked.header.streamId}`);
      }
    };
    const clients: WebSocket[] = new Array(EXECUTORS);
    let nextClient = 0;
    await Promise.all(
      Array.from({ length: 64 }, async () => {
        while (nextClient < EXECUTORS) {
          const i = nextClient++;
          const socket = await connect(`${relay.firstLine}${clientConnectPath(`cap-${i}`)}`, { Authorization: `Bearer ${token}` });
          socket.on('message', (data: Buffer, isBinary) => {
            if (isBinary) onClientFrame(data);
          });
          clients[i] = socket;
          sockets.push(socket);
        }
      }),
    );
    await sleep(500);
    const rssClients = await rssBytes(pid);

    const streams: Stream[] = [];
    const payload = new Uint8Array(PAYLOAD_BYTES);
    const openDeadline = Date.now() + 60_000;
    for (let s = 0; s < STREAMS; s += 500) {
      const batch: Promise<void>[] = [];
      for (let k = s; k < Math.min(STREAMS, s + 500); k++) {
        const socket = clients[k % EXECUTORS]!;
        const streamId = randomUUID();
        batch.push(new Promise<void>((resolve) => pendingOpens.set(streamId, resolve)));
        socket.send(encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'open', payload: new Uint8Array(0) } }));
        const template = Buffer.from(encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'data', seq: 0, segmentIndex: 0, segmentCount: 1, payload } }));
        streams.push({ socket, template });
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(batch), new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, openDeadline - Date.now()))))]);
      clearTimeout(timer);
      if (Date.now() >= openDeadline) throw new Error(`only ${streams.length - pendingOpens.size} of ${STREAMS} streams accepted within 60 s`);
    }
    await sleep(500);
    const rssStreams = await rssBytes(pid);

    // Saturation (closed loop).
    await drive(meter, streams, offset, Math.min(1000, PHASE_MS), 0); // warm-up
    const cpuBefore = await cpuMs(pid);
    const saturated = await drive(meter, streams, offset, PHASE_MS, 0);
    const relayCpuShare = (await cpuMs(pid)) - cpuBefore;
    const saturatingRate = saturated.echoes / saturated.seconds;
    const rssLoaded = await rssBytes(pid);

    // Added latency at 10/50/90 % of the saturating rate, through the relay and direct.
    const echoUrl = String((await ask(simulator, { type: 'echo-server' }, 10_000)).url);
    const directSockets: WebSocket[] = [];
    for (let i = 0; i < 16; i++) {
      const socket = await connect(echoUrl);
      socket.on('message', (data: Buffer) => meter.receive(data, 0, recording));
      directSockets.push(socket);
      sockets.push(socket);
    }
    const directTargets: Stream[] = directSockets.map((socket) => ({ socket, template: Buffer.alloc(PAYLOAD_BYTES + DATA_PAYLOAD_OFFSET) }));
    const latency: BenchFigure[] = [];
    for (const level of [0.1, 0.5, 0.9]) {
      const rate = Math.max(10, Math.round(saturatingRate * level));
      const scenario = `relay added latency: echo RTT at ${Math.round(level * 100)}% of saturation (${rate} echoes/s)`;
      const measure = async (targets: Stream[], off: number): Promise<{ rtts: number[]; achieved: number }> => {
        meter.rtts.length = 0;
        recording = true;
        const result = await drive(meter, targets, off, PHASE_MS, rate);
        recording = false;
        return { rtts: [...meter.rtts], achieved: result.echoes / result.seconds };
      };
      const viaRelay = await measure(streams, offset);
      const direct = await measure(directTargets, 0);
      const p99 = (values: number[]) => quantile([...values].sort((a, b) => a - b), 0.99);
      latency.push(
        { scenario, name: 'direct ws echo, no relay (baseline)', unit: 'ms', higherIsBetter: false, samples: direct.rtts, ratioOf: 'p99', notes: { achievedPerSecond: Math.round(direct.achieved) } },
        {
          scenario,
          name: 'echo through the relay (2 traversals)',
          unit: 'ms',
          higherIsBetter: false,
          samples: viaRelay.rtts,
          baseline: 'direct ws echo, no relay (baseline)',
          ratioOf: 'p99',
          notes: { p99AddedMs: Number((p99(viaRelay.rtts) - p99(direct.rtts)).toFixed(3)), achievedPerSecond: Math.round(viaRelay.achieved) },
        },
      );
    }

    const kib = (bytes: number) => bytes / 1024;
    const scenario = `relay capacity: ${EXECUTORS} executors, ${EXECUTORS} client sockets, ${STREAMS} streams`;
    return [
      {
        scenario,
        name: 'relay RSS, all registered and open',
        unit: 'MiB',
        higherIsBetter: false,
        samples: [rssStreams / 2 ** 20],
        notes: { startMiB: Number((rssStart / 2 ** 20).toFixed(1)), underLoadMiB: Number((rssLoaded / 2 ** 20).toFixed(1)), targetMiB: 1024 },
      },
      { scenario, name: 'relay RSS per executor', unit: 'KiB', higherIsBetter: false, samples: [kib((rssExecutors - rssStart) / EXECUTORS)] },
      { scenario, name: 'relay RSS per client socket', unit: 'KiB', higherIsBetter: false, samples: [kib((rssClients - rssExecutors) / EXECUTORS)] },
      { scenario, name: 'relay RSS per stream', unit: 'KiB', higherIsBetter: false, samples: [kib((rssStreams - rssClients) / STREAMS)] },
      {
        scenario,
        name: 'frames routed per second at saturation (1 KiB data frames)',
        unit: 'frames/s',
        higherIsBetter: true,
        samples: [(2 * saturated.echoes) / saturated.seconds],
        notes: { relayCpuPercent: Math.round((relayCpuShare / (saturated.seconds * 1000)) * 100), inFlight: IN_FLIGHT },
      },
      ...latency,
    ];
  } finally {
    for (const socket of sockets) socket.terminate();
    await ask(simulator, { type: 'stop' }, 5000).catch(() => simulator.kill('SIGKILL'));
    await relay.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
