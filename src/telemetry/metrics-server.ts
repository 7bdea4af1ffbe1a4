import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** Content type of the Prometheus text exposition (prom-client's). */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type HttpRoute = (req: http.IncomingMessage, res: http.ServerResponse) => void | Promise<void>;

/** A `GET /metrics` handler for a registry (or any exposition source). */
export function metricsRoute(source: Registry | (() => Promise<string>)): HttpRoute {
  const expose = typeof source === 'function' ? source : () => source.metrics();
  return async (_req, res) => {
    let body: string;
    try {
      body = await expose();
    } catch {
      res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('metrics unavailable\n');
      return;
    }
    res.writeHead(200, { 'Content-Type': PROMETHEUS_CONTENT_TYPE });
    res.end(body);
  };
}

/** Parses `HOST:PORT` (`[::1]:PORT` for IPv6; port 0 picks a free port). */
export function parseMetricsListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new Error(`invalid --metrics-listen ${value}: expected HOST:PORT, e.g. 127.0.0.1:9464`);
  return { host: (match[1] ?? match[2])!, port };
}

export interface MetricsServerOptions {
  /** The exposition served on `/metrics`. */
  metrics: () => Promise<string>;
  /** `/readyz` answers 200 while this is true (default: always). */
  ready?: () => boolean;
}

export interface MetricsServer {
  /** `http://HOST:PORT` as bound. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * A small HTTP listener for a process that has no HTTP port of its own (the agent):
 * `GET /metrics`, `GET /livez` and `GET /readyz`; everything else is 404.
 */
export async function startMetricsServer(hostPort: string, options: MetricsServerOptions): Promise<MetricsServer> {
  const { host, port } = parseMetricsListen(hostPort);
  const route = metricsRoute(options.metrics);
  const server = http.createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://agent').pathname;
    if (req.method !== 'GET') return text(res, 405, 'method not allowed\n');
    if (path === '/metrics') return void route(req, res);
    if (path === '/livez') return text(res, 200, 'ok\n');
    if (path === '/readyz') {
      const ready = options.ready?.() ?? true;
      return text(res, ready ? 200 : 503, ready ? 'ready\n' : 'not ready\n');
    }
    text(res, 404, 'not found\n');
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function text(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(body);
}
