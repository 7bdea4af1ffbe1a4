/**
 * What metrics and tracing cost on one-shot `true` latency against a direct local agent (client
 * connected already; `exec(['true'])`, then `await completion`), three variants measured in the
 * same run, interleaved in blocks (the order rotated per block) so drift on a shared machine hits
 * all alike:
 *
 * 1. telemetry off: an agent built without telemetry, no tracing anywhere (the baseline);
 * 2. metrics on: the agent with `createAgentTelemetry({})` and its `/metrics` listener, scraped
 *    over HTTP every 100 ms in the background from warm-up to the end (collection cost included);
 * 3. metrics + tracing on: as 2, plus OTLP/HTTP tracing (`startTracing`, the production batch
 *    delay) in the agent and in the client, exporting to a small sink on loopback that accepts
 *    `POST /v1/traces`; the client injects trace context on every request, the agent records a
 *    server span per request.
 *
 * The tracing SDK registers global providers, so every variant has its own agent process and its
 * own client process (this file run with `agent VARIANT` / `client VARIANT`): variants 1 and 2
 * never load the SDK. The parent only orchestrates over IPC, scrapes and hosts the OTLP sink.
 *
 * `BENCH_TELEMETRY_RUNS` sets the execs per variant (default 600, 90 with BENCH_QUICK); the
 * measurement is bounded to about 40 s whatever the count. Runs under `npm run bench` (its `run()`)
 * or alone: `node dist/bench/telemetry-cost.bench.js`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchNumber, QUICK, summarize, timeRuns, withTimeout, type BenchFigure, type SummarizedFigure } from './bench-result.js';
import { startProcess, type RunningProcess } from './cli-process.js';
import { runOneShot } from './fixtures.js';

const RUNS = benchNumber('BENCH_TELEMETRY_RUNS', 600, 90);
const BLOCKS = 10;
const WARMUP = QUICK ? 10 : 30;
/** Bound on all measured blocks together (startup and shutdown come on top, a few seconds). */
const MEASURE_BUDGET_MS = 40_000;
const SCRAPE_INTERVAL_MS = 100;

const SCENARIO = 'telemetry cost: one-shot `true` latency, direct local agent (connection open)';

type Variant = 'off' | 'metrics' | 'full';
const VARIANTS: readonly Variant[] = ['off', 'metrics', 'full'];
const NAMES: Record<Variant, string> = {
  off: 'telemetry off (no metrics, no tracing)',
  metrics: 'metrics on (+ /metrics scrape every 100 ms)',
  full: 'metrics + tracing on (OTLP/HTTP to loopback sink)',
};

const THIS_FILE = fileURLToPath(import.meta.url);

function isVariant(value: string | undefined): value is Variant {
  return value === 'off' || value === 'metrics' || value === 'full';
}

// ---------------------------------------------------------------------------------------------
// Child: the agent of one variant. Prints one JSON line ({url, metricsUrl?, tracing}) when ready.

interface AgentReady {
  url: string;
  metricsUrl?: string;
  tracing: boolean;
}

async function agentChild(variant: Variant, otlpUrl: string | undefined): Promise<void> {
  const [{ ExecutorAgent }, { createLogger }, tracingModule, agentTelemetryModule] = await Promise.all([
    import('../executor-agent/executor-agent.js'),
    import('../src/logging/logger.js'),
    import('../src/telemetry/tracing.js'),
    import('../executor-agent/telemetry/agent-telemetry.js'),
  ]);
  const logger = createLogger('telemetry-cost-agent', 'warn');
  const tracing =
    variant === 'full'
      ? await tracingModule.startTracing({ serviceName: 'execrelay-agent', env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl } })
      : undefined;
  if (variant === 'full' && !tracing?.enabled) throw new Error('agent tracing did not start');
  const telemetry =
    variant === 'off' ? undefined : agentTelemetryModule.createAgentTelemetry(tracing?.enabled ? { tracer: tracing.tracer } : {});
  const agent = new ExecutorAgent({}, logger, [], telemetry);
  const listener = await agent.listenWebSocket('ws://127.0.0.1:0');
  const metricsServer = telemetry ? await telemetry.startMetricsServer('127.0.0.1:0') : undefined;
  const ready: AgentReady = { url: listener.url, tracing: tracing?.enabled ?? false, ...(metricsServer ? { metricsUrl: `${metricsServer.url}/metrics` } : {}) };
  process.stdout.write(`${JSON.stringify(ready)}\n`);
  const stop = () => {
    agent.shutdown();
    void Promise.all([listener.close(), metricsServer?.close(), tracing?.shutdown()]).finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// ---------------------------------------------------------------------------------------------
// Child: the client of one variant, driven over IPC by the parent.

type ToClient = { type: 'run'; count: number; warmup: number; budgetMs: number } | { type: 'stop' };
type FromClient =
  | { type: 'ready'; spansRecording: boolean }
  | { type: 'samples'; samples: number[]; reads: number }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

async function clientChild(variant: Variant, agentUrl: string, otlpUrl: string | undefined): Promise<void> {
  const send = (message: FromClient) => process.send!(message);
  process.on('disconnect', () => process.exit(0));
  const [{ trace }, { ExecClient }, { startTracing }] = await Promise.all([
    import('@opentelemetry/api'),
    import('../src/client/exec-client.js'),
    import('../src/telemetry/tracing.js'),
  ]);
  // Only the traced variant registers a tracer provider (global: ExecClient's requests use it).
  const tracing =
    variant === 'full' ? await startTracing({ serviceName: 'execrelay-client', env: { OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl } }) : undefined;
  // Never ended, so never exported: only asks whether this process records spans at all.
  const spansRecording = trace.getTracer('telemetry-cost-probe').startSpan('probe').isRecording();
  const client = await ExecClient.connect(agentUrl);
  let queue = Promise.resolve();
  process.on('message', (message: ToClient) => {
    queue = queue.then(async () => {
      try {
        if (message.type === 'run') {
          const readsBefore = client.readsIssued;
          const samples = await timeRuns(message.count, message.warmup, () => runOneShot(client, ['true']), message.budgetMs);
          send({ type: 'samples', samples, reads: client.readsIssued - readsBefore });
        } else {
          client.close();
          await tracing?.shutdown();
          send({ type: 'stopped' });
          process.disconnect();
        }
      } catch (error) {
        send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
      }
    });
  });
  send({ type: 'ready', spansRecording });
}

// ---------------------------------------------------------------------------------------------
// Parent: the OTLP sink, the scraper and the orchestration.

interface OtlpSink {
  url: string;
  readonly requests: number;
  readonly bytes: number;
  readonly spansByService: Record<string, number>;
  close(): Promise<void>;
}

/** A loopback OTLP/HTTP receiver: `POST /v1/traces` (JSON) answered 200; counts spans per service. */
async function startOtlpSink(): Promise<OtlpSink> {
  const state = { requests: 0, bytes: 0, spansByService: {} as Record<string, number> };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') return void res.writeHead(404).end();
      const body = Buffer.concat(chunks);
      state.requests += 1;
      state.bytes += body.length;
      try {
        const parsed = JSON.parse(body.toString('utf8')) as {
          resourceSpans?: Array<{ resource?: { attributes?: Array<{ key: string; value: { stringValue?: string } }> }; scopeSpans?: Array<{ spans?: unknown[] }> }>;
        };
        for (const rs of parsed.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
          const count = (rs.scopeSpans ?? []).reduce((n, s) => n + (s.spans?.length ?? 0), 0);
          state.spansByService[service] = (state.spansByService[service] ?? 0) + count;
        }
      } catch {
        // Not JSON (a protobuf exporter): accepted, spans not counted.
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    get requests() {
      return state.requests;
    },
    get bytes() {
      return state.bytes;
    },
    get spansByService() {
      return state.spansByService;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** GETs `url` every SCRAPE_INTERVAL_MS (never two at once) until stopped. */
function startScraper(url: string, totals: { scrapes: number; bytes: number; failures: number }): () => Promise<void> {
  let inFlight: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (inFlight) return;
    inFlight = fetch(url)
      .then(async (res) => {
        const body = await res.text();
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        totals.scrapes += 1;
        totals.bytes = body.length;
      })
      .catch(() => void (totals.failures += 1))
      .finally(() => (inFlight = undefined));
  }, SCRAPE_INTERVAL_MS);
  return async () => {
    clearInterval(timer);
    await inFlight;
  };
}

interface ClientChild {
  child: ChildProcess;
  spansRecording: boolean;
  request(message: ToClient, timeoutMs: number): Promise<FromClient>;
  stop(): Promise<void>;
}

async function startClientChild(variant: Variant, agentUrl: string, otlpUrl: string): Promise<ClientChild> {
  const child = spawn(process.execPath, [THIS_FILE, 'client', variant, agentUrl, otlpUrl], {
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn' },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const next = (timeoutMs: number, what: string) =>
    withTimeout(
      new Promise<FromClient>((resolve, reject) => {
        const onExit = (code: number | null) => reject(new Error(`client (${variant}) exited with ${code}: ${stderr}`));
        child.once('exit', onExit);
        child.once('message', (message: FromClient) => {
          child.off('exit', onExit);
          if (message.type === 'error') reject(new Error(`client (${variant}): ${message.message}`));
          else resolve(message);
        });
      }),
      timeoutMs,
      `client (${variant}) ${what}`,
    );
  const ready = await next(20_000, 'start');
  if (ready.type !== 'ready') throw new Error(`client (${variant}) sent ${ready.type} first`);
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    spansRecording: ready.spansRecording,
    request(message, timeoutMs) {
      const answer = next(timeoutMs, message.type);
      child.send(message);
      return answer;
    },
    async stop() {
      if (exited()) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try {
        if (child.connected) {
          child.send({ type: 'stop' } satisfies ToClient);
          await withTimeout(gone, 5000, `client (${variant}) stop`);
          return;
        }
      } catch {
        // fall through to SIGKILL
      }
      if (!exited()) child.kill('SIGKILL');
      await gone;
    },
  };
}

interface VariantRig {
  variant: Variant;
  agent: RunningProcess;
  ready: AgentReady;
  client?: ClientChild;
  samples: number[];
  reads: number;
  scrape: { scrapes: number; bytes: number; failures: number };
}

export async function run(): Promise<BenchFigure[]> {
  const sink = await startOtlpSink();
  const rigs: VariantRig[] = [];
  try {
    for (const variant of VARIANTS) {
      const agent = await startProcess([THIS_FILE, 'agent', variant, sink.url]);
      const rig: VariantRig = { variant, agent, ready: JSON.parse(agent.firstLine) as AgentReady, samples: [], reads: 0, scrape: { scrapes: 0, bytes: 0, failures: 0 } };
      rigs.push(rig);
      rig.client = await startClientChild(variant, rig.ready.url, sink.url);
    }
    // What each variant really has switched on (the SDK must be loaded in variant 3 only).
    for (const rig of rigs) {
      const wantTracing = rig.variant === 'full';
      if (rig.ready.tracing !== wantTracing || rig.client!.spansRecording !== wantTracing) throw new Error(`variant ${rig.variant}: tracing agent=${rig.ready.tracing} client=${rig.client!.spansRecording}`);
      if ((rig.ready.metricsUrl !== undefined) !== (rig.variant !== 'off')) throw new Error(`variant ${rig.variant}: metrics ${rig.ready.metricsUrl ?? 'absent'}`);
    }

    const perBlock = Math.max(1, Math.ceil(RUNS / BLOCKS));
    const budgetMs = Math.floor(MEASURE_BUDGET_MS / (BLOCKS * rigs.length));
    const measure = async (rig: VariantRig, count: number, warmup: number, keep: boolean) => {
      const answer = await rig.client!.request({ type: 'run', count, warmup, budgetMs }, budgetMs + 30_000);
      if (answer.type !== 'samples') throw new Error(`client (${rig.variant}) answered ${answer.type}`);
      if (keep) {
        rig.samples.push(...answer.samples);
        rig.reads += answer.reads;
      }
    };
    // Like a Prometheus server: every agent with metrics is scraped all along, not only in its blocks.
    const scrapers = rigs.flatMap((rig) => (rig.ready.metricsUrl ? [startScraper(rig.ready.metricsUrl, rig.scrape)] : []));
    const measureStarted = Date.now();
    let measureSeconds = 0;
    try {
      for (const rig of rigs) await measure(rig, 0, WARMUP, false);
      for (let block = 0; block < BLOCKS; block++) {
        for (let i = 0; i < rigs.length; i++) await measure(rigs[(block + i) % rigs.length]!, perBlock, 0, true);
      }
    } finally {
      measureSeconds = (Date.now() - measureStarted) / 1000;
      await Promise.all(scrapers.map((stop) => stop()));
    }

    // Spans reach the sink after the batch delay; stopping the traced processes flushes the rest.
    for (const rig of rigs) await rig.client!.stop();
    for (const rig of rigs) await rig.agent.stop();

    const figure = (rig: VariantRig): BenchFigure => {
      const notes: Record<string, number | string> = { execs: rig.samples.length, processReadsPerExec: rig.samples.length ? rig.reads / rig.samples.length : 0 };
      if (rig.ready.metricsUrl) {
        Object.assign(notes, { scrapes: rig.scrape.scrapes, scrapesPerSecond: Number((rig.scrape.scrapes / measureSeconds).toFixed(1)), scrapeFailures: rig.scrape.failures, expositionBytes: rig.scrape.bytes });
      }
      if (rig.variant === 'full') {
        Object.assign(notes, {
          clientSpans: sink.spansByService['execrelay-client'] ?? 0,
          agentSpans: sink.spansByService['execrelay-agent'] ?? 0,
          otlpPosts: sink.requests,
        });
      }
      return {
        scenario: SCENARIO,
        name: NAMES[rig.variant],
        unit: 'ms',
        higherIsBetter: false,
        samples: rig.samples,
        ...(rig.variant === 'off' ? {} : { baseline: NAMES.off }),
        ...(rig.variant === 'full' ? { alsoCompare: [NAMES.metrics] } : {}),
        notes,
      };
    };
    const figures = rigs.map(figure);
    // The runner's ratio is of medians; keep the p95 ratio beside it.
    const summarized = summarize(figures);
    const offP95 = summarized.find((f) => f.name === NAMES.off)?.p95;
    for (const [i, f] of summarized.entries()) {
      if (f.name !== NAMES.off && offP95) figures[i]!.notes!.p95VsOff = Number((f.p95 / offP95).toFixed(3));
    }
    if (sink.requests === 0 || !sink.spansByService['execrelay-agent'] || !sink.spansByService['execrelay-client']) {
      throw new Error(`tracing variant exported nothing to the sink (${JSON.stringify(sink.spansByService)})`);
    }
    return figures;
  } finally {
    await Promise.all(rigs.map(async (rig) => {
      await rig.client?.stop().catch(() => undefined);
      await rig.agent.stop();
    }));
    await sink.close();
  }
}

function printTable(figures: SummarizedFigure[]): void {
  const fmt = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(3));
  const off = figures.find((f) => f.name === NAMES.off);
  const rows = figures.map((f) => [
    f.name,
    String(f.samples.length),
    fmt(f.median),
    fmt(f.p95),
    f === off ? '(baseline)' : `${fmt(f.median / off!.median)}x`,
    f === off ? '(baseline)' : `${fmt(f.p95 / off!.p95)}x`,
  ]);
  const header = ['variant', 'n', 'p50 ms', 'p95 ms', 'p50 vs off', 'p95 vs off'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(SCENARIO);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  for (const f of figures) console.log(`  ${f.name}: ${Object.entries(f.notes ?? {}).map(([k, v]) => `${k}=${typeof v === 'number' ? Number(v.toFixed(3)) : v}`).join(' ')}`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [role, variant, ...rest] = process.argv.slice(2);
  if (role === 'agent' && isVariant(variant)) {
    await agentChild(variant, rest[0]);
  } else if (role === 'client' && isVariant(variant) && rest[0]) {
    await clientChild(variant, rest[0], rest[1]);
  } else if (role === undefined) {
    const started = Date.now();
    console.log(`${QUICK ? '(quick mode)' : '(full mode)'} ${RUNS} execs per variant in ${BLOCKS} interleaved blocks`);
    printTable(summarize(await run()));
    console.log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } else {
    console.error('usage: telemetry-cost.bench.js [agent|client VARIANT ...]');
    process.exit(2);
  }
}
