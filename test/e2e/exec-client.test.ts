import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import os from 'node:os';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { ExecClient } from '../../src/client/exec-client.js';
import { OutputLostError, type ClientProcessEvent } from '../../src/client/process-events.js';
import type { MessageTransport } from '../../src/transport/message-transport.js';
import { WebSocketTransport } from '../../src/transport/websocket-transport.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';

const cwd = os.tmpdir();
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

/** Wraps a transport and drops the inbound messages `drop` selects (an injected seq gap). */
function droppingTransport(inner: MessageTransport, drop: (message: string) => boolean): MessageTransport {
  return {
    kind: inner.kind,
    get closed() {
      return inner.closed;
    },
    send: (m) => inner.send(m),
    onMessage: (listener) => inner.onMessage((m) => (drop(m) ? undefined : listener(m))),
    onClose: (listener) => inner.onClose(listener),
    pauseReceiving: () => inner.pauseReceiving(),
    resumeReceiving: () => inner.resumeReceiving(),
    close: (reason) => inner.close(reason),
  };
}

async function openSocket(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return socket;
}

describe('ExecClient completion', () => {
  let agent: RunningAgent;
  let legacy: RunningAgent;
  let smallRetention: RunningAgent;

  beforeAll(async () => {
    [agent, legacy, smallRetention] = await Promise.all([
      startAgent(),
      startAgent({ omitSandboxDenied: true }),
      startAgent({ retainedOutputBytes: 64 * 1024 }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([agent.stop(), legacy.stop(), smallRetention.stop()]);
  });

  it('completes from pushed events with zero process/read calls', async () => {
    const client = await ExecClient.connect(agent.url);
    const small = await client.exec(['sh', '-c', 'echo hi; echo err >&2; exit 3'], { cwd, env });
    const result = await small.completion;
    expect(result.exitCode).toBe(3);
    expect(result.sandboxDenied).toBe(false);
    expect(result.stdout.toString()).toBe('hi\n');
    expect(result.stderr.toString()).toBe('err\n');
    // A few MiB of output and many processes at once: still no reads.
    const big = await client.exec(['sh', '-c', 'head -c 3000000 /dev/urandom | base64'], { cwd, env });
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => client.exec(['sh', '-c', `echo ${i}`], { cwd, env })));
    const bigResult = await big.completion;
    expect(bigResult.stdout.length).toBeGreaterThan(4_000_000);
    expect((await Promise.all(many.map((h) => h.completion))).map((r) => r.stdout.toString())).toEqual(
      Array.from({ length: 20 }, (_, i) => `${i}\n`),
    );
    expect(client.readsIssued).toBe(0);
    client.close();
  });

  it('issues exactly one read against a legacy server that omits sandboxDenied', async () => {
    const client = await ExecClient.connect(legacy.url);
    const handle = await client.exec(['sh', '-c', 'echo legacy; exit 4'], { cwd, env });
    const result = await handle.completion;
    expect(result).toMatchObject({ exitCode: 4, sandboxDenied: false });
    expect(result.stdout.toString()).toBe('legacy\n');
    expect(client.readsIssued).toBe(1);
    client.close();
  });

  it('recovers from an injected seq gap with output intact and not duplicated', async () => {
    let outputs = 0;
    const transport = droppingTransport(new WebSocketTransport(await openSocket(agent.url)), (m) => {
      if (!m.includes('"process/output"')) return false;
      outputs += 1;
      return outputs === 2; // lose the second output notification
    });
    const client = await ExecClient.overTransport(transport);
    const handle = await client.exec(['sh', '-c', 'for i in 1 2 3 4 5; do echo line$i; sleep 0.02; done'], { cwd, env, streamEvents: true });
    const seen: ClientProcessEvent[] = [];
    for await (const event of handle.events) seen.push(event);
    const result = await handle.completion;
    expect(result.stdout.toString()).toBe('line1\nline2\nline3\nline4\nline5\n');
    const seqs = seen.filter((e) => e.type === 'output').map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    expect(client.readsIssued).toBe(1);
    client.close();
  });

  it("slowConsumer 'read': falls back to process/read when a slow consumer lags its bounded buffer, losing nothing", async () => {
    const client = await ExecClient.connect(agent.url);
    const handle = await client.exec(['sh', '-c', 'i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); done'], {
      cwd,
      env,
      streamEvents: true,
      eventBufferBytes: 2048,
      slowConsumer: 'read',
    });
    const hash = createHash('sha256');
    let count = 0;
    for await (const event of handle.events) {
      if (event.type !== 'output') continue;
      hash.update(event.chunk);
      if (++count % 5 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    const result = await handle.completion;
    const expected = Array.from({ length: 3000 }, (_, i) => `line ${i}\n`).join('');
    expect(result.stdout.toString()).toBe(expected);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));
    expect(client.readsIssued).toBeGreaterThan(0);
    client.close();
  });

  it("slowConsumer 'read': fails clearly when output fell out of the retained window, never a silent hole", async () => {
    const client = await ExecClient.connect(smallRetention.url);
    const handle = await client.exec(['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" y; echo'], {
      cwd,
      env,
      streamEvents: true,
      eventBufferBytes: 4096,
      slowConsumer: 'read',
    });
    await new Promise((r) => setTimeout(r, 1000)); // do not consume while it writes 1 MB
    const consume = (async () => {
      for await (const _ of handle.events) {
        /* drain */
      }
    })();
    await expect(consume).rejects.toBeInstanceOf(OutputLostError);
    await expect(handle.completion).rejects.toThrow(/output no longer retained after seq \d+/);
    client.close();
  });

  it("slowConsumer 'pause' (default): the same stalled consumer loses nothing and reads nothing; the process waited", async () => {
    const client = await ExecClient.connect(smallRetention.url);
    const handle = await client.exec(['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" y; echo'], {
      cwd,
      env,
      streamEvents: true,
      eventBufferBytes: 4096,
    });
    await new Promise((r) => setTimeout(r, 1000)); // do not consume while it writes 1 MB
    let bytes = 0;
    for await (const event of handle.events) if (event.type === 'output') bytes += event.chunk.length;
    expect(bytes).toBe(1_000_001);
    expect((await handle.completion).exitCode).toBe(0);
    expect(client.readsIssued).toBe(0);
    client.close();
  });

  it('a consumer that leaves its events loop early releases the connection for other processes', async () => {
    const client = await ExecClient.connect(agent.url);
    const flood = await client.exec(['sh', '-c', 'head -c 50000000 /dev/zero'], { cwd, env, streamEvents: true, eventBufferBytes: 64 * 1024 });
    await new Promise((r) => setTimeout(r, 300)); // its buffer fills: the client stops reading
    for await (const event of flood.events) if (event.type === 'output') break;
    const other = await client.exec(['sh', '-c', 'echo still-served'], { cwd, env });
    expect((await other.completion).stdout.toString()).toBe('still-served\n');
    await flood.terminate();
    client.close();
  });

  it('writes to stdin and terminates through the handle', async () => {
    const client = await ExecClient.connect(agent.url);
    const cat = await client.exec(['cat'], { cwd, env, pipeStdin: true });
    expect(await cat.write('abc')).toBe('accepted');
    expect(await cat.write('def', { closeStdin: true })).toBe('accepted');
    expect((await cat.completion).stdout.toString()).toBe('abcdef');
    const sleeper = await client.exec(['sleep', '30'], { cwd, env });
    expect(await sleeper.terminate()).toBe(true);
    expect((await sleeper.completion).exitCode).toBe(143);
    expect(await sleeper.terminate()).toBe(false);
    client.close();
  });

  it('fails pending calls with "transport closed" when the connection drops', async () => {
    const client = await ExecClient.connect(agent.url);
    const handle = await client.exec(['sleep', '30'], { cwd, env });
    const pendingRead = client.read(handle.processId, 0, { waitMs: 20_000 });
    client.rpc.transport.close();
    await expect(pendingRead).rejects.toThrow(/transport closed/);
    await expect(handle.completion).rejects.toThrow(/connection to the agent closed/);
  });
});
