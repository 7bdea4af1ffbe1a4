import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { RawRpcClient, b64, unb64, type RawMessage } from '../support/raw-rpc-client.js';
import { startAgent } from '../support/agent-harness.js';
import { startCodexWireAgentWithRelay } from '../support/codex-wire-agent.js';

const cwd = pathToFileURL(os.tmpdir()).href;
const PATH = process.env.PATH ?? '/usr/bin:/bin';

function startParams(processId: string, argv: string[], extra: Record<string, unknown> = {}) {
  return { processId, argv, cwd, env: { PATH }, tty: false, pipeStdin: false, arg0: null, ...extra };
}

async function waitClosed(client: RawRpcClient, processId: string, timeoutMs = 10_000): Promise<RawMessage> {
  return client.waitFor((m) => m.method === 'process/closed' && m.params.processId === processId, timeoutMs);
}

/** Where the scenarios run: a way to open raw JSON-RPC connections to one agent, and to stop it. */
interface ScenarioTarget {
  connect(): Promise<RawRpcClient>;
  stop(): Promise<void>;
}

/** The agent settings a describe asks for (flags of the same names for an agent process). */
type ScenarioConfig = Partial<Record<'terminateGraceMs' | 'retainedOutputBytes' | 'sessionRetentionMs', number>>;
const FLAGS: Record<keyof ScenarioConfig, string> = {
  terminateGraceMs: '--terminate-grace-ms',
  retainedOutputBytes: '--retained-output-bytes',
  sessionRetentionMs: '--session-retention-ms',
};

const TARGETS: Array<{ name: string; capabilities: Record<string, boolean>; start: (config: ScenarioConfig) => Promise<ScenarioTarget> }> = [
  {
    name: 'raw wire, direct WebSocket',
    // A WebSocket carries binary messages: the agent offers its binary paths too.
    capabilities: { ptyResize: true, fileTransfer: true, binaryOutput: true, binaryFileBlocks: true },
    async start(config) {
      const running = await startAgent(config);
      return { connect: () => RawRpcClient.connect(running.url), stop: () => running.stop() };
    },
  },
  {
    // An `execrelay agent --wire codex` process through the relay: hybrid IK, codex relay frames, §8 records.
    name: 'codex wire through the relay to execrelay agent --wire codex',
    // The codex wire carries JSON only: never a binary path.
    capabilities: { ptyResize: true, fileTransfer: true },
    async start(config) {
      const flags = Object.entries(config).flatMap(([key, value]) => [FLAGS[key as keyof ScenarioConfig], String(value)]);
      const agent = await startCodexWireAgentWithRelay('scenarios-codex', flags);
      return { connect: () => agent.connectRaw(), stop: () => agent.stop() };
    },
  },
];

/** The codex exec-server scenario list, over the raw wire against a real agent, on each target. */
describe.each(TARGETS)('process scenarios ($name)', ({ start, capabilities }) => {
  let running: ScenarioTarget;
  let client: RawRpcClient;

  beforeAll(async () => {
    running = await start({ terminateGraceMs: 500, retainedOutputBytes: 64 * 1024 });
    client = await running.connect();
    await client.initialize();
  });
  afterAll(async () => {
    client?.close();
    await running?.stop();
  });

  it('starts and exits', async () => {
    const started = await client.request('process/start', startParams('starts', ['true']));
    expect(started.result).toEqual({ processId: 'starts' });
    const exited = await client.waitFor((m) => m.method === 'process/exited' && m.params.processId === 'starts');
    expect(exited.params.exitCode).toBe(0);
    expect(exited.params.sandboxDenied).toBe(false);
    await waitClosed(client, 'starts');
  });

  it('streams output', async () => {
    await client.request('process/start', startParams('streams', ['sh', '-c', 'for i in 1 2 3; do echo line$i; sleep 0.05; done']));
    await waitClosed(client, 'streams');
    const text = client
      .notifications('streams')
      .filter((m) => m.method === 'process/output')
      .map((m) => unb64(m.params.chunk))
      .join('');
    expect(text).toBe('line1\nline2\nline3\n');
  });

  it('pushes events in seq order: stdout=1, stderr=2, exited=3, closed=4', async () => {
    await client.request('process/start', startParams('ordered', ['sh', '-c', 'echo hi; echo err >&2; exit 3']));
    await waitClosed(client, 'ordered');
    const events = client.notifications('ordered').map((m) => ({
      method: m.method,
      seq: m.params.seq,
      stream: m.params.stream,
      text: m.params.chunk ? unb64(m.params.chunk) : undefined,
      exitCode: m.params.exitCode,
    }));
    expect(events).toEqual([
      { method: 'process/output', seq: 1, stream: 'stdout', text: 'hi\n', exitCode: undefined },
      { method: 'process/output', seq: 2, stream: 'stderr', text: 'err\n', exitCode: undefined },
      { method: 'process/exited', seq: 3, stream: undefined, text: undefined, exitCode: 3 },
      { method: 'process/closed', seq: 4, stream: undefined, text: undefined, exitCode: undefined },
    ]);
  });

  it('replays events after close via read', async () => {
    await client.request('process/start', startParams('replay', ['sh', '-c', 'echo one; echo two >&2']));
    await waitClosed(client, 'replay');
    const read = await client.request('process/read', { processId: 'replay', afterSeq: 0, maxBytes: null, waitMs: 0 });
    expect(read.result.chunks.map((c: any) => [c.seq, c.stream, unb64(c.chunk)])).toEqual([
      [1, 'stdout', 'one\n'],
      [2, 'stderr', 'two\n'],
    ]);
    expect(read.result).toMatchObject({ nextSeq: 5, exited: true, exitCode: 0, closed: true, failure: null, sandboxDenied: false });
    const after = await client.request('process/read', { processId: 'replay', afterSeq: 1 });
    expect(after.result.chunks.map((c: any) => c.seq)).toEqual([2]);
  });

  it('retains output after exit until the streams close', async () => {
    // The shell exits at once; a background child keeps stdout open and writes later.
    await client.request('process/start', startParams('lingers', ['sh', '-c', 'echo first; (sleep 0.6; echo late) & exit 0']));
    await client.waitFor((m) => m.method === 'process/exited' && m.params.processId === 'lingers');
    const mid = await client.request('process/read', { processId: 'lingers', afterSeq: 0 });
    expect(mid.result.exited).toBe(true);
    expect(mid.result.closed).toBe(false);
    expect(mid.result.chunks.map((c: any) => unb64(c.chunk)).join('')).toBe('first\n');
    await waitClosed(client, 'lingers');
    const end = await client.request('process/read', { processId: 'lingers', afterSeq: 0 });
    expect(end.result.closed).toBe(true);
    expect(end.result.chunks.map((c: any) => unb64(c.chunk)).join('')).toBe('first\nlate\n');
  });

  it('writes then reads with pipeStdin', async () => {
    await client.request('process/start', startParams('piped', ['cat'], { pipeStdin: true }));
    const write = await client.request('process/write', { processId: 'piped', chunk: b64('hello\n'), writeId: 'w1' });
    expect(write.result).toEqual({ status: 'accepted' });
    const read = await client.request('process/read', { processId: 'piped', afterSeq: 0, waitMs: 5000 });
    expect(read.result.chunks.map((c: any) => unb64(c.chunk)).join('')).toBe('hello\n');
    // A retried writeId is not written twice.
    await client.request('process/write', { processId: 'piped', chunk: b64('hello\n'), writeId: 'w1' });
    await client.request('process/write', { processId: 'piped', chunk: b64('bye\n'), writeId: 'w2', closeStdin: true });
    await waitClosed(client, 'piped');
    const all = await client.request('process/read', { processId: 'piped', afterSeq: 0 });
    expect(all.result.chunks.map((c: any) => unb64(c.chunk)).join('')).toBe('hello\nbye\n');
  });

  it('writes then reads with a tty', async () => {
    await client.request('process/start', startParams('tty', ['sh', '-c', 'read line; echo "got:$line"'], { tty: true }));
    const write = await client.request('process/write', { processId: 'tty', chunk: b64('ping\n'), writeId: 't1' });
    expect(write.result.status).toBe('accepted');
    await waitClosed(client, 'tty');
    const read = await client.request('process/read', { processId: 'tty', afterSeq: 0 });
    const text = read.result.chunks.map((c: any) => unb64(c.chunk)).join('');
    expect(read.result.chunks.every((c: any) => c.stream === 'pty')).toBe(true);
    expect(text).toContain('got:ping');
  });

  it('offers ptyResize at initialize, sizes a tty at start (80x24 without ptySize) and resizes it', async () => {
    const other = await running.connect();
    try {
      const init = await other.request('initialize', { clientName: 'resize-test' });
      expect(init.result.capabilities).toEqual(capabilities);
      other.notify('initialized', {});
      const script = 'stty size; read x; stty size';
      await other.request('process/start', startParams('sized', ['sh', '-c', script], { tty: true, ptySize: { cols: 132, rows: 50 } }));
      await other.request('process/start', startParams('default', ['sh', '-c', 'stty size'], { tty: true }));
      await other.waitFor((m) => m.method === 'process/output' && m.params.processId === 'sized' && unb64(m.params.chunk).includes('50 132'));
      const resized = await other.request('process/resizePty', { processId: 'sized', cols: 90, rows: 33 });
      expect(resized.result).toEqual({});
      await other.request('process/write', { processId: 'sized', chunk: b64('\n'), writeId: 'r1' });
      await waitClosed(other, 'sized');
      await waitClosed(other, 'default');
      const text = async (processId: string) =>
        (await other.request('process/read', { processId, afterSeq: 0 })).result.chunks.map((c: any) => unb64(c.chunk)).join('').replace(/\r/g, '');
      expect((await text('sized')).split('\n').filter((line: string) => /^\d+ \d+$/.test(line))).toEqual(['50 132', '33 90']);
      expect(await text('default')).toContain('24 80');
      // After the exit a resize changes nothing and is no error (it races the exit notice).
      expect((await other.request('process/resizePty', { processId: 'sized', cols: 10, rows: 10 })).result).toEqual({});
    } finally {
      other.close();
    }
  });

  it('rejects write without pipeStdin', async () => {
    await client.request('process/start', startParams('nostdin', ['sleep', '5']));
    const write = await client.request('process/write', { processId: 'nostdin', chunk: b64('x'), writeId: 'n1' });
    expect(write.error?.code).toBe(-32600);
    expect(write.error?.message).toMatch(/pipeStdin/);
    await client.request('process/terminate', { processId: 'nostdin' });
  });

  it('allows only one start for duplicate ids', async () => {
    const attempts = await Promise.all(
      [1, 2, 3, 4].map(() => client.request('process/start', startParams('dup', ['sh', '-c', 'echo once']))),
    );
    expect(attempts.filter((a) => a.result).length).toBe(1);
    expect(attempts.filter((a) => a.error).every((a) => a.error!.code === -32600 && /duplicate processId/.test(a.error!.message))).toBe(true);
    await waitClosed(client, 'dup');
    expect(client.notifications('dup').filter((m) => m.method === 'process/output').length).toBe(1);
  });

  it('terminate reports true while running and false after exit', async () => {
    await client.request('process/start', startParams('term', ['sleep', '30']));
    const first = await client.request('process/terminate', { processId: 'term' });
    expect(first.result).toEqual({ running: true });
    const exited = await client.waitFor((m) => m.method === 'process/exited' && m.params.processId === 'term');
    expect(exited.params.exitCode).toBe(128 + 15);
    const second = await client.request('process/terminate', { processId: 'term' });
    expect(second.result).toEqual({ running: false });
    const unknown = await client.request('process/terminate', { processId: 'never-started' });
    expect(unknown.result).toEqual({ running: false });
  });

  it('terminate escalates to SIGKILL for a process that ignores SIGTERM, killing the whole group', async () => {
    await client.request('process/start', startParams('stubborn', ['sh', '-c', 'trap "" TERM; sleep 30 & sleep 30; wait']));
    await new Promise((r) => setTimeout(r, 200));
    await client.request('process/terminate', { processId: 'stubborn' });
    const exited = await client.waitFor((m) => m.method === 'process/exited' && m.params.processId === 'stubborn', 5000);
    expect(exited.params.exitCode).toBe(128 + 9);
    await waitClosed(client, 'stubborn', 5000); // the background sleep held stdout: it died with the group
  });

  it('signals the process group', async () => {
    await client.request('process/start', startParams('sig', ['sleep', '30']));
    const sent = await client.request('process/signal', { processId: 'sig', signal: 'interrupt' });
    expect(sent.result).toEqual({});
    const exited = await client.waitFor((m) => m.method === 'process/exited' && m.params.processId === 'sig');
    expect(exited.params.exitCode).toBe(128 + 2);
  });

  it('reports evicted output on read instead of a hole', async () => {
    // 64 KiB retained in this agent; write ~300 KiB.
    await client.request('process/start', startParams('evict', ['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x']));
    await waitClosed(client, 'evict');
    const read = await client.request('process/read', { processId: 'evict', afterSeq: 0 });
    expect(read.result.evictedThroughSeq).toBeGreaterThan(0);
    expect(read.result.chunks[0].seq).toBe(read.result.evictedThroughSeq + 1);
    const retained = read.result.chunks.reduce((n: number, c: any) => n + Buffer.from(c.chunk, 'base64').length, 0);
    expect(retained).toBeLessThanOrEqual(64 * 1024 + 65536);
    const fromRetained = await client.request('process/read', { processId: 'evict', afterSeq: read.result.evictedThroughSeq });
    expect(fromRetained.result.evictedThroughSeq ?? null).toBeNull();
  });

  it('caps a read at maxBytes and reports exit only once the cursor passes it', async () => {
    await client.request('process/start', startParams('paged', ['sh', '-c', 'echo aaaa; sleep 0.05; echo bbbb; sleep 0.05; echo cccc']));
    await waitClosed(client, 'paged');
    const first = await client.request('process/read', { processId: 'paged', afterSeq: 0, maxBytes: 5 });
    expect(first.result.chunks.length).toBe(1);
    expect(first.result.nextSeq).toBe(2);
    expect(first.result.exited).toBe(false);
    const rest = await client.request('process/read', { processId: 'paged', afterSeq: 1 });
    expect(rest.result.exited).toBe(true);
    expect(rest.result.closed).toBe(true);
  });

  it('long-polls a read until output arrives', async () => {
    await client.request('process/start', startParams('poll', ['sh', '-c', 'sleep 0.3; echo ready']));
    const started = Date.now();
    const read = await client.request('process/read', { processId: 'poll', afterSeq: 0, waitMs: 5000 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(read.result.chunks.map((c: any) => unb64(c.chunk)).join('')).toBe('ready\n');
  });
});

describe.each(TARGETS)('sessions ($name)', ({ start }) => {
  let running: ScenarioTarget;
  beforeAll(async () => {
    running = await start({ sessionRetentionMs: 1500 });
  });
  afterAll(async () => running?.stop());

  it('fails a long-poll read when another connection resumes the session', async () => {
    const first = await running.connect();
    const sessionId = await first.initialize();
    await first.request('process/start', startParams('held', ['sleep', '30']));
    const pendingRead = first.request('process/read', { processId: 'held', afterSeq: 0, waitMs: 20_000 }, 15_000);
    await new Promise((r) => setTimeout(r, 100));
    const second = await running.connect();
    expect(await second.initialize(sessionId)).toBe(sessionId);
    const failed = await pendingRead;
    expect(failed.error?.code).toBe(-32600);
    expect(failed.error?.message).toMatch(/resumed by another connection/);
    // The old connection can no longer act on the session; the new one can.
    const stale = await first.request('process/terminate', { processId: 'held' });
    expect(stale.error?.code).toBe(-32600);
    const terminated = await second.request('process/terminate', { processId: 'held' });
    expect(terminated.result).toEqual({ running: true });
    first.close();
    second.close();
  });

  it('retains output and exit after the notification receiver closes, for a resumed session', async () => {
    const first = await running.connect();
    const sessionId = await first.initialize();
    await first.request('process/start', startParams('detached', ['sh', '-c', 'sleep 0.3; echo while-away; exit 7']));
    first.close();
    await new Promise((r) => setTimeout(r, 800));
    const second = await running.connect();
    await second.initialize(sessionId);
    const read = await second.request('process/read', { processId: 'detached', afterSeq: 0 });
    expect(read.result.chunks.map((c: any) => unb64(c.chunk)).join('')).toBe('while-away\n');
    expect(read.result).toMatchObject({ exited: true, exitCode: 7, closed: true });
    second.close();
  });

  it('kills every process of a session that is not resumed within the retention window', async () => {
    const first = await running.connect();
    const sessionId = await first.initialize();
    await first.request('process/start', startParams('orphan', ['sh', '-c', 'echo $$; exec sleep 60']));
    const output = await first.waitFor((m) => m.method === 'process/output' && m.params.processId === 'orphan');
    const pid = Number(unb64(output.params.chunk).trim());
    expect(() => process.kill(pid, 0)).not.toThrow();
    first.close();
    await new Promise((r) => setTimeout(r, 2200));
    const second = await running.connect();
    const resumed = await second.request('initialize', { clientName: 'x', resumeSessionId: sessionId });
    expect(resumed.error?.code).toBe(-32004);
    expect(resumed.error?.message).toMatch(/unknown or expired session/);
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
    second.close();
  });
});
