/**
 * Fixtures for HTTP and MCP through the executor: an agent serving the `http/*` family whose
 * outgoing connections come from a dedicated loopback source address (with loopback allowed
 * explicitly, as `--http-allow 127.0.0.0/8` would: agents refuse it by default), and upstream servers that
 * answer only connections from that address. The test process itself (the client side) has no way
 * to reach them: its direct requests are refused by the guard, and `forbidDirectFetch` makes any
 * use of the global fetch throw.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { vi } from 'vitest';
import { ExecutorAgent, type WebSocketListener } from '../../executor-agent/executor-agent.js';
import type { AgentConfig } from '../../executor-agent/agent-config.js';
import { createHttpHandlers, type HttpHandlerOptions } from '../../executor-agent/http-handlers.js';
import { parseHttpAllow } from '../../executor-agent/http-destination-policy.js';
import { createLogger } from '../../src/logging/logger.js';
import { startRemoteAgent, type RemoteAgentFixture } from './relay-harness.js';

/** Outgoing connections of the test agent come from here; guarded servers answer nobody else. */
export const AGENT_SOURCE_ADDRESS = '127.0.0.3';

/**
 * The test agents' default `allow`: the upstream servers listen on 127.0.0.1, which an agent
 * refuses unless told otherwise. A test's own `allow` replaces it (`allow: []` is the agent's default).
 */
export const LOOPBACK_ALLOW = parseHttpAllow(['127.0.0.0/8']);

export interface UpstreamLog {
  /** Every request the agent sent upstream (each redirect hop), in order. */
  readonly requests: Array<{ method: string; url: string }>;
}

function handlerOptions(log: UpstreamLog, extra: HttpHandlerOptions): HttpHandlerOptions {
  return {
    localAddress: AGENT_SOURCE_ADDRESS,
    allow: LOOPBACK_ALLOW,
    onUpstreamRequest: (info) => log.requests.push(info),
    ...extra,
  };
}

export interface HttpAgent extends UpstreamLog {
  agent: ExecutorAgent;
  url: string;
  stop(): Promise<void>;
}

/** A real agent on a loopback WebSocket port with the `http/*` handlers. */
export async function startHttpAgent(options: HttpHandlerOptions = {}, config: Partial<AgentConfig> = {}): Promise<HttpAgent> {
  const log: UpstreamLog = { requests: [] };
  const agent = new ExecutorAgent(config, createLogger('test-agent', 'silent'), [createHttpHandlers(handlerOptions(log, options))]);
  const listener: WebSocketListener = await agent.listenWebSocket('ws://127.0.0.1:0');
  return {
    agent,
    url: listener.url,
    requests: log.requests,
    async stop() {
      agent.shutdown();
      await listener.close();
    },
  };
}

export interface RelayedHttpAgent extends RemoteAgentFixture, UpstreamLog {}

/** A real agent with the `http/*` handlers, registered with a relay under `environmentId`. */
export async function startRelayedHttpAgent(relayUrl: string, environmentId: string, options: HttpHandlerOptions = {}): Promise<RelayedHttpAgent> {
  const log: UpstreamLog = { requests: [] };
  const remote = await startRemoteAgent(relayUrl, environmentId, { handlerTables: [createHttpHandlers(handlerOptions(log, options))] });
  return { ...remote, requests: log.requests };
}

export interface GuardedServer {
  readonly url: string;
  readonly port: number;
  readonly server: http.Server;
  /** Requests refused because they did not come from the agent's source address. */
  readonly violations: string[];
  /** Requests answered (all from the agent). */
  readonly served: Array<{ method: string; path: string; remoteAddress: string }>;
  /** Sockets the server has accepted from the agent, with whether they closed. */
  readonly sockets: Array<{ socket: Socket; closed: Promise<void> }>;
  close(): Promise<void>;
}

/**
 * A real HTTP server on 127.0.0.1 that serves only connections from AGENT_SOURCE_ADDRESS
 * (anything else gets 403 and is recorded as a violation).
 */
export async function startGuardedServer(handler: http.RequestListener): Promise<GuardedServer> {
  const violations: string[] = [];
  const served: GuardedServer['served'] = [];
  const sockets: GuardedServer['sockets'] = [];
  const server = http.createServer((req, res) => {
    const remoteAddress = req.socket.remoteAddress ?? '';
    if (remoteAddress !== AGENT_SOURCE_ADDRESS) {
      violations.push(`${req.method} ${req.url} from ${remoteAddress}`);
      res.writeHead(403, { 'content-type': 'text/plain' }).end('reachable only from the executor\n');
      return;
    }
    served.push({ method: req.method ?? '', path: req.url ?? '', remoteAddress });
    handler(req, res);
  });
  server.on('connection', (socket) => {
    sockets.push({ socket, closed: new Promise((resolve) => socket.once('close', () => resolve())) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    violations,
    served,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Makes the client process's own global fetch throw for the rest of the file: everything must go
 * through the executor. Returns the real fetch (to prove the guard refuses a direct request).
 */
export function forbidDirectFetch(): typeof fetch {
  const realFetch = globalThis.fetch;
  vi.stubGlobal('fetch', () => {
    throw new Error('direct fetch from the client side is forbidden in this test: use the executor');
  });
  return realFetch;
}

/** Length of the pseudo-random block large bodies repeat (a prime, so chunk boundaries never line up with it). */
const PATTERN_PERIOD = 1_048_573;
const patternBlocks = new Map<number, Buffer>();

function patternBlock(seed: number): Buffer {
  let block = patternBlocks.get(seed);
  if (!block) {
    block = Buffer.allocUnsafe(PATTERN_PERIOD);
    let x = seed >>> 0 || 1;
    for (let i = 0; i < PATTERN_PERIOD; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      block[i] = x & 0xff;
    }
    patternBlocks.set(seed, block);
  }
  return block;
}

/** `length` bytes of the deterministic test pattern for `seed`, starting at `offset`. */
export function patternBytes(length: number, seed = 1, offset = 0): Buffer {
  const block = patternBlock(seed);
  const out = Buffer.allocUnsafe(length);
  let written = 0;
  let position = offset % PATTERN_PERIOD;
  while (written < length) {
    const n = Math.min(length - written, PATTERN_PERIOD - position);
    block.copy(out, written, position, position + n);
    written += n;
    position = 0;
  }
  return out;
}

export interface UpstreamState {
  /** Bytes the server handed to the socket per `/bytes` or `/endless` request id (`?id=`). */
  readonly written: Map<string, number>;
  /** Resolves when the response with `?id=` saw its connection close. */
  closed(id: string): Promise<void>;
  /** Whether `?id=` finished writing its whole body. */
  readonly completed: Set<string>;
}

/**
 * The upstream application the tests reach through the agent:
 * - `/echo`: the request as JSON (method, url, headers, body as base64), with repeated `x-multi`
 * - `/bytes?n=N&seed=S&id=ID&chunk=C`: N pattern bytes, written as fast as the socket takes them
 * - `/endless?id=ID`: pattern bytes until the client goes away
 * - `/redirect?status=S&to=URL`: a redirect (`to` sent verbatim as `location`)
 * - `/slow?ms=N`: headers after N ms
 * - `/fail`: headers and half a body, then the socket is destroyed
 * - `/oversized-json?n=N`: N bytes of JSON
 */
export function upstreamApp(): { handler: http.RequestListener; state: UpstreamState } {
  const written = new Map<string, number>();
  const completed = new Set<string>();
  const closeWaiters = new Map<string, Promise<void>>();
  const closeResolvers = new Map<string, () => void>();
  const closedPromise = (id: string) => {
    let promise = closeWaiters.get(id);
    if (!promise) {
      promise = new Promise<void>((resolve) => closeResolvers.set(id, resolve));
      closeWaiters.set(id, promise);
    }
    return promise;
  };
  const handler: http.RequestListener = (req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream.invalid');
    const id = url.searchParams.get('id') ?? '';
    if (id) {
      closedPromise(id);
      res.on('close', () => closeResolvers.get(id)?.());
    }
    switch (url.pathname) {
      case '/echo': {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          const body = JSON.stringify({ method: req.method, url: req.url, headers: req.rawHeaders, body: Buffer.concat(chunks).toString('base64') });
          res.setHeader('content-type', 'application/json');
          res.setHeader('x-multi', ['a', 'b']);
          res.writeHead(200).end(body);
        });
        return;
      }
      case '/bytes':
      case '/endless': {
        const endless = url.pathname === '/endless';
        const total = endless ? Number.POSITIVE_INFINITY : Number(url.searchParams.get('n') ?? '0');
        const chunkSize = Number(url.searchParams.get('chunk') ?? String(64 * 1024));
        const seed = Number(url.searchParams.get('seed') ?? '1');
        res.writeHead(200, endless ? { 'content-type': 'application/octet-stream' } : { 'content-type': 'application/octet-stream', 'content-length': String(total) });
        let offset = 0;
        const pump = () => {
          while (offset < total && !res.destroyed) {
            const piece = patternBytes(Math.min(chunkSize, total - offset), seed, offset);
            offset += piece.length;
            if (id) written.set(id, offset);
            if (!res.write(piece)) {
              res.once('drain', pump);
              return;
            }
          }
          if (!endless && !res.destroyed) {
            completed.add(id);
            res.end();
          }
        };
        pump();
        return;
      }
      case '/redirect': {
        res.writeHead(Number(url.searchParams.get('status') ?? '302'), { location: url.searchParams.get('to') ?? '/echo' });
        res.end('redirecting');
        return;
      }
      case '/slow': {
        const timer = setTimeout(() => res.writeHead(200, { 'content-type': 'text/plain' }).end('slow'), Number(url.searchParams.get('ms') ?? '1000'));
        res.on('close', () => clearTimeout(timer));
        return;
      }
      case '/fail': {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' });
        res.write(Buffer.alloc(50_000, 7), () => setTimeout(() => res.socket?.destroy(), 20));
        return;
      }
      case '/oversized-json': {
        const n = Number(url.searchParams.get('n') ?? '0');
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`{"pad":"${'x'.repeat(Math.max(0, n - 10))}"}`);
        return;
      }
      default:
        res.writeHead(404).end('not found');
    }
  };
  return { handler, state: { written, completed, closed: closedPromise } };
}
