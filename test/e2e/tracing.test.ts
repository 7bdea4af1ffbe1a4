import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecClient } from '../../src/client/exec-client.js';
import { extractTraceContext, injectTraceCarrier } from '../../src/telemetry/propagation.js';
import { otlpTracesUrl, startTracing, type Tracing } from '../../src/telemetry/tracing.js';
import { startInstrumentedAgent, startInstrumentedRelay, TELEMETRY_TEST_TOKEN, type InstrumentedAgentFixture, type InstrumentedRelay } from '../support/prometheus-fixtures.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { runCli, startCli } from '../support/cli.js';
import { PACKAGE_VERSION } from '../../src/package-version.js';

interface OtlpSpan {
  service: string;
  /** The resource's attributes (first value of each). */
  resource: Record<string, unknown>;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

/** A loopback OTLP/HTTP receiver: accepts `POST /v1/traces` JSON (what the exporter sends) and keeps the spans. */
async function startOtlpReceiver(): Promise<{ url: string; spans: OtlpSpan[]; requests: number; close(): Promise<void> }> {
  const spans: OtlpSpan[] = [];
  const state = { requests: 0 };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces' || !String(req.headers['content-type']).includes('application/json')) {
        res.writeHead(404).end();
        return;
      }
      state.requests += 1;
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans?: Array<{
          resource?: { attributes?: Array<{ key: string; value: { stringValue?: string } & Record<string, unknown> }> };
          scopeSpans?: Array<{ spans?: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: Array<{ key: string; value: Record<string, unknown> }> }> }>;
        }>;
      };
      for (const resourceSpans of body.resourceSpans ?? []) {
        const service = resourceSpans.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        const resource = Object.fromEntries((resourceSpans.resource?.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
        for (const scope of resourceSpans.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({
              service,
              resource,
              traceId: span.traceId,
              spanId: span.spanId,
              parentSpanId: span.parentSpanId ?? '',
              name: span.name,
              kind: span.kind,
              attributes: Object.fromEntries((span.attributes ?? []).map((a) => [a.key, Object.values(a.value)[0]])),
            });
          }
        }
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    get requests() {
      return state.requests;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function until<T>(find: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const SPAN_KIND_SERVER = 2;
const SPAN_KIND_CLIENT = 3;

describe('tracing: W3C context from client request to agent server span over OTLP/HTTP', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let clientTracing: Tracing;
  let agentTracing: Tracing;
  let relay: InstrumentedRelay;
  let proxy: TcpProxy;
  let agent: InstrumentedAgentFixture;
  let client: ExecClient;
  let tracer: Tracer;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url };
    // One process here plays both services: the client's provider is the global one (active
    // context, ExecClient's default tracer); the agent's is passed explicitly.
    clientTracing = await startTracing({ serviceName: 'execrelay-client', env, scheduledDelayMillis: 100 });
    agentTracing = await startTracing({ serviceName: 'execrelay-agent', env, register: false, scheduledDelayMillis: 100 });
    expect(clientTracing.enabled && agentTracing.enabled).toBe(true);
    tracer = trace.getTracer('tracing-test');
    relay = await startInstrumentedRelay();
    // Every byte between the endpoints and the relay passes this proxy: what the relay hop sees.
    proxy = await startTcpProxy(Number(new URL(relay.url).port));
    agent = await startInstrumentedAgent(proxy.url, 'traced-env', { tracer: agentTracing.tracer });
    client = await ExecClient.connect({ relay: proxy.url, environmentId: 'traced-env', agentKey: agent.identity.publicIdentity, token: TELEMETRY_TEST_TOKEN });
  });

  afterAll(async () => {
    client?.close();
    await agent?.stop();
    await proxy?.close();
    await relay?.stop();
    await clientTracing?.shutdown();
    await agentTracing?.shutdown();
    await receiver?.close();
    trace.disable();
    context.disable();
    propagation.disable();
  });

  it('parents the agent\'s server span on the client span, in one trace, with rpc.method; the relay never sees the carrier', async () => {
    let operationTraceId = '';
    await tracer.startActiveSpan('operation', async (span) => {
      operationTraceId = span.spanContext().traceId;
      await client.fs.getMetadata('/');
      span.end();
    });
    await clientTracing.forceFlush();
    await agentTracing.forceFlush();

    const clientSpan = await until(
      () => receiver.spans.find((s) => s.service === 'execrelay-client' && s.name === 'fs/getMetadata' && s.traceId === operationTraceId),
      'client span',
    );
    const serverSpan = await until(
      () => receiver.spans.find((s) => s.service === 'execrelay-agent' && s.name === 'fs/getMetadata' && s.traceId === operationTraceId),
      'agent server span',
    );
    const operation = receiver.spans.find((s) => s.name === 'operation' && s.traceId === operationTraceId);
    expect(operation).toBeDefined();
    expect(clientSpan.kind).toBe(SPAN_KIND_CLIENT);
    expect(clientSpan.parentSpanId).toBe(operation!.spanId);
    expect(clientSpan.attributes['rpc.method']).toBe('fs/getMetadata');
    expect(serverSpan.kind).toBe(SPAN_KIND_SERVER);
    expect(serverSpan.traceId).toBe(clientSpan.traceId);
    expect(serverSpan.parentSpanId).toBe(clientSpan.spanId);
    expect(serverSpan.attributes['rpc.method']).toBe('fs/getMetadata');
    expect(serverSpan.attributes['execrelay.result']).toBe('ok');

    // The carrier travelled inside the Noise channel: neither direction through the relay holds it.
    for (const direction of ['upstream', 'downstream'] as const) {
      const bytes = proxy.captured(direction);
      expect(bytes.length).toBeGreaterThan(1000);
      expect(bytes.includes('traceparent'), `${direction} bytes hold "traceparent"`).toBe(false);
      expect(bytes.includes(operationTraceId), `${direction} bytes hold the trace id`).toBe(false);
      expect(bytes.includes(serverSpan.parentSpanId), `${direction} bytes hold the client span id`).toBe(false);
    }
  });

  it('ignores an invalid carrier: the request succeeds and the server span starts a new trace', async () => {
    const invalid = [
      { traceparent: 'not-a-traceparent' },
      { traceparent: '00-00000000000000000000000000000000-0000000000000000-01' },
      { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-zz', tracestate: '\u0000bad' },
      { traceparent: 'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    ];
    for (const carrier of invalid) {
      await expect(client.request('fs/getMetadata', { path: 'file:///' }, { trace: carrier })).resolves.toMatchObject({});
    }
    await agentTracing.forceFlush();
    const roots = await until(() => {
      const found = receiver.spans.filter((s) => s.service === 'execrelay-agent' && s.name === 'fs/getMetadata' && s.parentSpanId === '');
      return found.length >= invalid.length ? found : undefined;
    }, 'root server spans');
    for (const span of roots) expect(span.traceId).not.toBe('0af7651916cd43dd8448eb211c80319c');
  });

  it('names the span of an unrouted method `unknown`', async () => {
    await expect(client.request('no-such/method', {})).rejects.toMatchObject({ code: -32601 });
    await clientTracing.forceFlush();
    await agentTracing.forceFlush();
    const span = await until(() => receiver.spans.find((s) => s.service === 'execrelay-agent' && s.name === 'unknown'), 'unknown span');
    expect(span.attributes['rpc.method']).toBe('unknown');
    expect(span.attributes['execrelay.result']).toBe('method_not_found');
    expect(receiver.spans.some((s) => s.name.includes('no-such'))).toBe(false);
  });
});

describe('tracing: propagation helpers and configuration', () => {
  it('injects nothing without an active span, and round-trips a valid carrier', () => {
    expect(injectTraceCarrier(context.active())).toBeUndefined();
    const carrier = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', tracestate: 'vendor=value' };
    const extracted = extractTraceContext(carrier, context.active());
    expect(trace.getSpanContext(extracted)).toMatchObject({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', isRemote: true });
    expect(injectTraceCarrier(extracted)).toEqual(carrier);
  });

  it('returns the base context for invalid carriers, never throwing', () => {
    const base = context.active();
    for (const bad of [undefined, { traceparent: '' }, { traceparent: 'x'.repeat(10_000) }, { traceparent: 5 } as never, {} as never]) {
      expect(extractTraceContext(bad, base)).toBe(base);
    }
  });

  it('reads the OTLP endpoint variables', async () => {
    expect(otlpTracesUrl({})).toBeUndefined();
    expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toBe('http://collector:4318/v1/traces');
    expect(otlpTracesUrl({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom' })).toBe('http://b:4318/custom');
    expect((await startTracing({ serviceName: 'execrelay-relay', env: {} })).enabled).toBe(false);
  });
});

describe('tracing: one trace per CLI operation, resource from the OTEL environment (real processes)', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let agent: Awaited<ReturnType<typeof startCli>>;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=staging,host.name=agent-host-1',
    });
  });
  afterAll(async () => {
    await agent?.stop();
    await receiver?.close();
  });

  it('`execrelay exec` is one trace: one root span, every request and every agent span below it; the resource names the service, version and instance', async () => {
    const result = await runCli(['exec', '--url', agent.firstLine, '--', 'sh', '-c', 'echo traced-marker; exit 3'], {
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'ci-runner', OTEL_RESOURCE_ATTRIBUTES: 'team=build' },
    });
    expect(result).toMatchObject({ code: 3, stdout: 'traced-marker\n' });

    const root = await until(() => receiver.spans.find((s) => s.name === 'execrelay exec'), 'the CLI root span');
    // The agent exports on its own batch schedule: wait for its process/start span.
    await until(() => receiver.spans.find((s) => s.service === 'execrelay-agent' && s.name === 'process/start'), 'the agent process/start span');
    const agentSpans = receiver.spans.filter((s) => s.service === 'execrelay-agent');
    const clientSpans = receiver.spans.filter((s) => s.service === 'ci-runner');

    // One trace: everything either process exported is in the root's trace, and only the root has no parent.
    expect(new Set([...agentSpans, ...clientSpans].map((s) => s.traceId))).toEqual(new Set([root.traceId]));
    const trace = receiver.spans.filter((s) => s.traceId === root.traceId);
    expect(trace.filter((s) => s.parentSpanId === '')).toEqual([root]);
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    const ancestors = (span: OtlpSpan): string[] => {
      const chain: string[] = [];
      for (let parent = byId.get(span.parentSpanId); parent; parent = byId.get(parent.parentSpanId)) chain.push(parent.name);
      return chain;
    };
    expect(clientSpans.map((s) => s.name)).toEqual(expect.arrayContaining(['execrelay exec', 'initialize', 'process/start']));
    expect(agentSpans.map((s) => s.name)).toEqual(expect.arrayContaining(['initialize', 'process/start']));
    for (const span of [...clientSpans, ...agentSpans]) {
      if (span === root) continue;
      expect(ancestors(span).at(-1), `${span.service} ${span.name}`).toBe('execrelay exec');
    }
    const serverStart = agentSpans.find((s) => s.name === 'process/start')!;
    expect(serverStart.kind).toBe(SPAN_KIND_SERVER);
    expect(ancestors(serverStart)).toEqual(['process/start', 'execrelay exec']);
    // A remote command's non-zero exit is not an execrelay failure: no error status on the root.
    // (The receiver keeps no status; the name and parent shape are what is checked here.)

    // Resources: OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; version and instance id are there;
    // the process detector's command line, pid, path and owner are not (the command is the user's).
    const clientResource = root.resource;
    expect(clientResource).toMatchObject({ 'service.name': 'ci-runner', 'service.version': PACKAGE_VERSION, team: 'build', 'process.runtime.name': 'nodejs' });
    expect(String(clientResource['service.instance.id'])).toMatch(/^[0-9a-f-]{36}$/);
    const agentResource = serverStart.resource;
    expect(agentResource).toMatchObject({
      'service.name': 'execrelay-agent',
      'service.version': PACKAGE_VERSION,
      'deployment.environment.name': 'staging',
      'host.name': 'agent-host-1',
      'host.arch': expect.any(String),
    });
    expect(agentResource['service.instance.id']).not.toBe(clientResource['service.instance.id']);
    for (const resource of [clientResource, agentResource]) {
      for (const key of ['process.pid', 'process.command', 'process.command_args', 'process.executable.path', 'process.owner', 'host.id']) {
        expect(resource[key], key).toBeUndefined();
      }
    }
    expect(JSON.stringify(receiver.spans)).not.toContain('traced-marker');
  });
});
