/**
 * `ExecClient.fetch` (WHATWG fetch over `http/request`) against a real agent and a real upstream
 * server that answers only the agent's source address; the test process's own global fetch throws.
 * Streamed bodies, redirect modes, abort (before and during the body: the upstream connection
 * closes), and the bounded body queue (flow control keeps it bounded and pushes back on the
 * server; without flow control it fails clearly instead of growing).
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecClient } from '../../src/client/exec-client.js';
import { BodyQueueOverflowError } from '../../src/client/executor-fetch.js';
import { RpcError } from '../../src/protocol/error-codes.js';
import {
  AGENT_SOURCE_ADDRESS,
  forbidDirectFetch,
  patternBytes,
  startGuardedServer,
  startHttpAgent,
  upstreamApp,
  type GuardedServer,
  type HttpAgent,
  type UpstreamState,
} from '../support/mcp-executor-harness.js';

let upstream: GuardedServer;
let state: UpstreamState;
let agent: HttpAgent;
let client: ExecClient;
let realFetch: typeof fetch;

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function readAll(response: Response): Promise<{ bytes: Buffer; chunks: number }> {
  const reader = response.body!.getReader();
  const hash: Buffer[] = [];
  let chunks = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks++;
    hash.push(Buffer.from(value));
  }
  return { bytes: Buffer.concat(hash), chunks };
}

beforeAll(async () => {
  realFetch = forbidDirectFetch();
  const app = upstreamApp();
  state = app.state;
  upstream = await startGuardedServer(app.handler);
  agent = await startHttpAgent();
  client = await ExecClient.connect(agent.url);
});

afterAll(async () => {
  client?.close();
  await agent?.stop();
  await upstream?.close();
});

describe('the guard', () => {
  it('refuses the client side: a direct request gets 403, and the global fetch throws', async () => {
    const direct = await realFetch(`${upstream.url}/echo`);
    expect(direct.status).toBe(403);
    await direct.text();
    expect(upstream.violations).toHaveLength(1);
    upstream.violations.length = 0;
    expect(() => fetch(`${upstream.url}/echo`)).toThrow(/forbidden/);
  });
});

describe('ExecClient.fetch', () => {
  it('does a request: method, headers and body go out from the agent; status, headers, url come back', async () => {
    const response = await client.fetch(`${upstream.url}/echo?x=1`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-client': 'yes' },
      body: JSON.stringify({ hello: 'world' }),
    });
    expect(response.status).toBe(200);
    expect(response.ok).toBe(true);
    expect(response.url).toBe(`${upstream.url}/echo?x=1`);
    expect(response.headers.get('x-multi')).toBe('a, b');
    const echoed = (await response.json()) as { method: string; headers: string[]; body: string };
    expect(echoed.method).toBe('POST');
    expect(Buffer.from(echoed.body, 'base64').toString()).toBe('{"hello":"world"}');
    expect(echoed.headers.map((h) => h.toLowerCase())).toContain('x-client');
    expect(upstream.served.at(-1)?.remoteAddress).toBe(AGENT_SOURCE_ADDRESS);
    expect(client.http.activeBodies).toBe(0);
  });

  it('streams a 20 MiB body into Response.body, checksummed', async () => {
    const size = 20 * 1024 * 1024;
    const response = await client.fetch(`${upstream.url}/bytes?n=${size}&seed=3`);
    expect(response.headers.get('content-length')).toBe(String(size));
    const { bytes, chunks } = await readAll(response);
    expect(bytes.length).toBe(size);
    expect(sha256(bytes)).toBe(sha256(patternBytes(size, 3)));
    expect(chunks).toBeGreaterThan(1);
    expect(client.http.peakQueuedBodyBytes).toBeLessThanOrEqual(8 * 1024 * 1024);
  });

  it('maps redirect modes: follow follows, manual returns the 3xx, error rejects', async () => {
    const target = encodeURIComponent('/echo?landed=1');
    const followed = await client.fetch(`${upstream.url}/redirect?status=302&to=${target}`);
    expect(followed.status).toBe(200);
    expect(followed.redirected).toBe(true);
    expect(followed.url).toBe(`${upstream.url}/echo?landed=1`);
    await followed.arrayBuffer();

    const manual = await client.fetch(`${upstream.url}/redirect?status=307&to=${target}`, { redirect: 'manual' });
    expect(manual.status).toBe(307);
    expect(manual.headers.get('location')).toBe('/echo?landed=1');
    expect(await manual.text()).toBe('redirecting');

    await expect(client.fetch(`${upstream.url}/redirect?status=301&to=${target}`, { redirect: 'error' })).rejects.toThrow(TypeError);
  });

  it('rejects with TypeError (cause: the agent\'s RpcError) when the request fails', async () => {
    const failure = await client.fetch('http://127.0.0.1:1/').catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TypeError);
    expect((failure as TypeError).message).toMatch(/^fetch failed: http\/request failed: error sending request/);
    expect((failure as TypeError).cause).toBeInstanceOf(RpcError);
    await expect(client.fetch('ftp://127.0.0.1/x')).rejects.toThrow(/only supports http and https/);
  });

  it('errors the body when the upstream breaks it off', async () => {
    const response = await client.fetch(`${upstream.url}/fail`);
    await expect(response.arrayBuffer()).rejects.toThrow();
  });

  it('aborting before the response cancels the remote request', async () => {
    const controller = new AbortController();
    const pending = client.fetch(`${upstream.url}/slow?ms=10000&id=abort-early`, { signal: controller.signal });
    await waitFor(() => upstream.served.some((s) => s.path.includes('abort-early')));
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    await state.closed('abort-early');
  });

  it('aborting mid-stream errors Response.body and closes the upstream connection', async () => {
    const controller = new AbortController();
    const response = await client.fetch(`${upstream.url}/endless?id=abort-mid`, { signal: controller.signal });
    const reader = response.body!.getReader();
    let received = 0;
    while (received < 1024 * 1024) received += (await reader.read()).value!.byteLength;
    controller.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });
    await state.closed('abort-mid');
    await waitFor(() => client.http.activeBodies === 0);
  });

  it('cancelling Response.body closes the upstream connection', async () => {
    const response = await client.fetch(`${upstream.url}/endless?id=cancel-body`);
    const reader = response.body!.getReader();
    await reader.read();
    await reader.cancel();
    await state.closed('cancel-body');
  });
});

describe('the bounded body queue', () => {
  it('with flow control: a consumer that stops reading holds the upstream server back; nothing queues past the bound', async () => {
    const bound = 256 * 1024;
    const small = client.http.fetchWith({ maxQueuedBodyBytes: bound });
    const size = 32 * 1024 * 1024;
    const response = await small(`${upstream.url}/bytes?n=${size}&seed=5&id=held`);
    const reader = response.body!.getReader();
    const first = await reader.read();
    // Stop reading: the agent stops after the window, its socket buffers fill, the server's writes stall.
    let stalledAt = 0;
    for (let i = 0; i < 20; i++) {
      await sleep(100);
      const now = state.written.get('held') ?? 0;
      if (now === stalledAt && now > 0) break;
      stalledAt = now;
    }
    expect(state.completed.has('held')).toBe(false);
    expect(stalledAt).toBeLessThan(size / 2); // kernel socket buffers, not the body, are what got through
    // Now drain it all and check every byte.
    const hash = createHash('sha256').update(first.value!);
    let total = first.value!.byteLength;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      hash.update(value);
    }
    expect(total).toBe(size);
    expect(hash.digest('hex')).toBe(sha256(patternBytes(size, 5)));
    expect(client.http.peakQueuedBodyBytes).toBeLessThanOrEqual(8 * 1024 * 1024); // earlier tests' default bound
  });

  it('the queue never exceeds the bound for a flow-controlled response', async () => {
    const bound = 128 * 1024;
    const probe = await ExecClient.connect(agent.url);
    try {
      const response = await probe.http.fetchWith({ maxQueuedBodyBytes: bound })(`${upstream.url}/bytes?n=${8 * 1024 * 1024}&seed=9`);
      const reader = response.body!.getReader();
      let total = 0;
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        total += value.byteLength;
        if (total % (1024 * 1024) < value.byteLength) await sleep(20); // a slow consumer
      }
      expect(total).toBe(8 * 1024 * 1024);
      expect(probe.http.peakQueuedBodyBytes).toBeGreaterThan(0);
      expect(probe.http.peakQueuedBodyBytes).toBeLessThanOrEqual(bound);
    } finally {
      probe.close();
    }
  });

  it('without flow control (a codex-like agent): the body fails with BodyQueueOverflowError instead of growing', async () => {
    const bound = 64 * 1024;
    const unbounded = client.http.fetchWith({ maxQueuedBodyBytes: bound, flowControl: false });
    const response = await unbounded(`${upstream.url}/endless?id=overflow`);
    const reader = response.body!.getReader();
    await sleep(300); // not reading
    let failure: unknown;
    try {
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(BodyQueueOverflowError);
    expect((failure as Error).message).toBe(`response body exceeded the client queue bound of ${bound} bytes (the agent did not apply flow control)`);
    await state.closed('overflow'); // and the remote request was cancelled
  });
});

async function waitFor(predicate: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}
