import { describe, expect, it } from 'vitest';
import { ExecClient } from '../../../../src/client/exec-client.js';
import { OutputLostError } from '../../../../src/client/process-events.js';
import { GAP_GRACE_MS } from '../../../../src/client/process-tracker.js';
import { SessionRecoveryError, type StreamReopener } from '../../../../src/client/session-resume-retries.js';
import { CallInterruptedError } from '../../../../src/client/resend-after-stream-loss.js';
import type { MessageTransport } from '../../../../src/transport/message-transport.js';

/**
 * `ExecClient` over scripted transports (a codex exec-server's answers, as the e2e saw them): the
 * transport closing under a live session is replaced through the reopener, the session resumed and
 * each process caught up by seq. The real thing (codex executor, relay restart) is
 * test/e2e/codex-recovery.test.ts; these drive the branches it cannot aim at.
 */

type Message = { id?: number; method?: string; params?: Record<string, unknown> };
type Answer = { result: unknown } | { error: { code: number; message: string } } | undefined;

/** One stream to the "executor": `answer` gives each request's answer; `push` sends a notification; `drop` ends the stream. */
class ScriptedTransport implements MessageTransport {
  readonly kind = 'memory' as const;
  readonly received: Message[] = [];
  private readonly messageListeners: Array<(message: string) => void> = [];
  private readonly closeListeners: Array<(error?: Error) => void> = [];
  private isClosed = false;

  constructor(private readonly answer: (message: Message, transport: ScriptedTransport) => Answer) {}

  get closed(): boolean {
    return this.isClosed;
  }
  async send(text: string): Promise<void> {
    if (this.isClosed) throw new Error('transport closed');
    const message = JSON.parse(text) as Message;
    this.received.push(message);
    if (message.id === undefined) return;
    const answer = this.answer(message, this);
    if (answer) queueMicrotask(() => this.deliver({ id: message.id, ...answer }));
  }
  deliver(message: object): void {
    if (!this.isClosed) for (const listener of this.messageListeners) listener(JSON.stringify(message));
  }
  push(method: string, params: object): void {
    this.deliver({ method, params });
  }
  drop(error = new Error('the rendezvous socket closed (code 1006)')): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const listener of this.closeListeners.splice(0)) listener(error);
  }
  onMessage(listener: (message: string) => void): void {
    this.messageListeners.push(listener);
  }
  onClose(listener: (error?: Error) => void): void {
    this.closeListeners.push(listener);
  }
  pauseReceiving(): void {}
  resumeReceiving(): void {}
  close(): void {
    this.drop(undefined);
  }
}

const SESSION = 'session-1';
const b64 = (text: string) => Buffer.from(text).toString('base64');
const output = (seq: number, text: string) => ({ processId: 'p', seq, stream: 'stdout', chunk: b64(text) });
const quickPolicy = { timeoutMs: 2000, backoff: { initialMs: 10, maxMs: 40 } };

/** The first stream: a session whose process `p` printed "1\n" (seq 1) before the stream dropped. */
function firstStream(): ScriptedTransport {
  return new ScriptedTransport((message) => {
    if (message.method === 'initialize') return { result: { sessionId: SESSION } };
    if (message.method === 'process/start') return { result: { processId: 'p' } };
    return undefined; // a read on it is never answered: the drop interrupts it
  });
}

/** A resumed stream: initialize {resumeSessionId} answered, `process/read` answered by `read`. */
function resumedStream(read: (afterSeq: number) => Answer, sessionId = SESSION): ScriptedTransport {
  return new ScriptedTransport((message) => {
    if (message.method === 'initialize') return message.params?.resumeSessionId === SESSION ? { result: { sessionId } } : { error: { code: -32004, message: 'unknown session' } };
    if (message.method === 'process/read') return read(Number(message.params?.afterSeq ?? 0));
    return undefined;
  });
}

function reopenerOf(streams: Array<ScriptedTransport | Error>, isPermanent: (error: unknown) => boolean = () => false): StreamReopener & { opened: number } {
  const reopener = {
    opened: 0,
    policy: quickPolicy,
    isPermanent,
    reopen: async () => {
      const next = streams[reopener.opened++];
      if (!next) throw new Error('no more streams');
      if (next instanceof Error) throw next;
      return next;
    },
  };
  return reopener;
}

describe('ExecClient session recovery', () => {
  it('resumes on a new stream (retrying -32010 and an unreachable relay), reads what it missed by seq, and completes with the exit code', async () => {
    const first = firstStream();
    const attached = new ScriptedTransport((message) => (message.method === 'initialize' ? { error: { code: -32010, message: 'session already attached' } } : undefined));
    const resumed = resumedStream((afterSeq) => ({
      result: { chunks: [output(2, '2\n'), output(3, '3\n')].filter((c) => c.seq > afterSeq), nextSeq: 6, exited: true, exitCode: 7, closed: true, failure: null, sandboxDenied: false },
    }));
    const reopener = reopenerOf([new Error('cannot reach the relay'), attached, resumed]);
    const resumedEvents: Array<{ cause: string; attempts: number }> = [];
    const client = await ExecClient.overTransport(first, { onSessionResumed: (detail) => resumedEvents.push(detail) }, reopener);
    const handle = await client.exec(['sh'], { processId: 'p', streamEvents: true });
    first.push('process/output', output(1, '1\n'));
    const events = handle.events[Symbol.asyncIterator]();
    expect((await events.next()).value).toMatchObject({ type: 'output', seq: 1 });
    first.drop();
    const completion = await handle.completion;
    expect({ stdout: completion.stdout.toString(), exitCode: completion.exitCode }).toEqual({ stdout: '1\n2\n3\n', exitCode: 7 });
    expect(resumed.received.find((m) => m.method === 'process/read')?.params).toMatchObject({ processId: 'p', afterSeq: 1 });
    expect(resumed.received.some((m) => m.method === 'initialized')).toBe(true);
    expect(attached.closed).toBe(true);
    expect(client.sessionRecoveries).toBe(1);
    expect(resumedEvents).toEqual([{ cause: 'the stream to the executor ended (the rendezvous socket closed (code 1006))', attempts: 3 }]);
    // Calls go to the new stream.
    const before = resumed.received.length;
    await client.read('p', 3);
    expect(resumed.received.length).toBe(before + 1);
    client.close();
  });

  it('a catch-up read and a raw read the drop interrupted are made again on the new stream; a call made during the recovery waits for it', async () => {
    const first = firstStream();
    const resumed = resumedStream((afterSeq) => ({
      result: { chunks: [output(1, '1\n'), output(2, '2\n')].filter((c) => c.seq > afterSeq), nextSeq: 5, exited: true, exitCode: 0, closed: true, failure: null, sandboxDenied: false },
    }));
    const client = await ExecClient.overTransport(first, {}, reopenerOf([resumed]));
    const handle = await client.exec(['sh'], { processId: 'p' });
    // seq 2 before seq 1, and seq 1 not pushed within GAP_GRACE_MS: the tracker asks
    // process/read(afterSeq=0), which the first stream never answers.
    first.push('process/output', output(2, '2\n'));
    const inFlight = client.read('p', 0);
    await new Promise((resolve) => setTimeout(resolve, GAP_GRACE_MS + 50));
    expect(first.received.filter((m) => m.method === 'process/read').map((m) => m.params?.afterSeq)).toEqual([0, 0]);
    first.drop();
    const waiting = client.read('p', 1);
    expect((await inFlight).chunks.map((c) => c.chunk.toString())).toEqual(['1\n', '2\n']);
    const completion = await handle.completion;
    expect({ stdout: completion.stdout.toString(), exitCode: completion.exitCode }).toEqual({ stdout: '1\n2\n', exitCode: 0 });
    expect((await waiting).chunks.map((c) => c.chunk.toString())).toEqual(['2\n']);
    expect(resumed.received.filter((m) => m.method === 'process/read').length).toBeGreaterThanOrEqual(2);
    client.close();
  });

  it('a stdin write in flight when the stream drops is sent again on the resumed stream with the same writeId (the executor writes it once)', async () => {
    const first = firstStream();
    const resumed = new ScriptedTransport((message) => {
      if (message.method === 'initialize') return { result: { sessionId: SESSION } };
      if (message.method === 'process/write') return { result: { status: 'accepted' } };
      if (message.method === 'process/read') return { result: { chunks: [], nextSeq: 1, exited: false, exitCode: null, closed: false, failure: null, sandboxDenied: false } };
      return undefined;
    });
    const client = await ExecClient.overTransport(first, {}, reopenerOf([resumed]));
    const handle = await client.exec(['cat'], { processId: 'p', pipeStdin: true });
    const write = handle.write('line\n', { closeStdin: true });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const sent = first.received.filter((m) => m.method === 'process/write');
    expect(sent).toHaveLength(1);
    first.drop();
    expect(await write).toBe('accepted');
    const again = resumed.received.filter((m) => m.method === 'process/write');
    expect(again.map((m) => m.params)).toEqual([sent[0]!.params]);
    expect(again[0]!.params).toMatchObject({ processId: 'p', chunk: b64('line\n'), closeStdin: true, writeId: expect.any(String) });
    client.close();
  });

  it('a process/start in flight when the stream drops is sent again; the executor\'s "already exists" (codex\'s and execrelay\'s wording) means the first one started it, and what it pushed on the lost stream is read', async () => {
    for (const duplicate of ['process p already exists', 'duplicate processId: p']) {
      const first = new ScriptedTransport((message) => (message.method === 'initialize' ? { result: { sessionId: SESSION } } : undefined));
      const resumed = new ScriptedTransport((message) => {
        if (message.method === 'initialize') return { result: { sessionId: SESSION } };
        if (message.method === 'process/start') return { error: { code: -32600, message: duplicate } };
        if (message.method === 'process/read') {
          const afterSeq = Number(message.params?.afterSeq ?? 0);
          return { result: { chunks: [output(1, 'ran once\n')].filter((c) => c.seq > afterSeq), nextSeq: 4, exited: true, exitCode: 5, closed: true, failure: null, sandboxDenied: false } };
        }
        return undefined;
      });
      const client = await ExecClient.overTransport(first, {}, reopenerOf([resumed]));
      const started = client.exec(['sh', '-c', 'echo ran once; exit 5'], { processId: 'p' });
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(first.received.filter((m) => m.method === 'process/start')).toHaveLength(1);
      first.drop();
      const completion = await (await started).completion;
      expect({ stdout: completion.stdout.toString(), exitCode: completion.exitCode }).toEqual({ stdout: 'ran once\n', exitCode: 5 });
      expect(resumed.received.filter((m) => m.method === 'process/start').map((m) => m.params)).toEqual([first.received.find((m) => m.method === 'process/start')!.params]);
      expect(resumed.received.find((m) => m.method === 'process/read')?.params).toMatchObject({ processId: 'p', afterSeq: 0 });
      client.close();
    }
  });

  it('a process/start the first stream never delivered starts on the resumed one; a duplicate id refused on a first send stays an error', async () => {
    const first = new ScriptedTransport((message) => (message.method === 'initialize' ? { result: { sessionId: SESSION } } : undefined));
    const resumed = new ScriptedTransport((message) => {
      if (message.method === 'initialize') return { result: { sessionId: SESSION } };
      if (message.method === 'process/start') {
        const id = String(message.params?.processId);
        if (id === 'taken') return { error: { code: -32600, message: 'process taken already exists' } };
        queueMicrotask(() => {
          resumed.push('process/exited', { processId: id, seq: 1, exitCode: 0, sandboxDenied: false });
          resumed.push('process/closed', { processId: id, seq: 2 });
        });
        return { result: { processId: id } };
      }
      if (message.method === 'process/read') return { result: { chunks: [], nextSeq: 1, exited: false, exitCode: null, closed: false, failure: null, sandboxDenied: false } };
      return undefined;
    });
    const client = await ExecClient.overTransport(first, {}, reopenerOf([resumed]));
    const started = client.exec(['true'], { processId: 'q' });
    await new Promise((resolve) => setTimeout(resolve, 5));
    first.drop();
    expect((await (await started).completion).exitCode).toBe(0);
    await expect(client.exec(['true'], { processId: 'taken' })).rejects.toThrow('process taken already exists');
    client.close();
  });

  it('terminate and harmless fs calls in flight are sent again; a signal, a copy or a non-forced remove fail with CallInterruptedError, and the client goes on', async () => {
    const first = firstStream();
    const resumed = new ScriptedTransport((message) => {
      if (message.method === 'initialize') return { result: { sessionId: SESSION } };
      if (message.method === 'process/terminate') return { result: { running: false } };
      if (message.method === 'fs/readFile') return { result: { dataBase64: b64('contents') } };
      if (message.method === 'fs/createDirectory' || message.method === 'process/signal') return { result: {} };
      if (message.method === 'process/read') return { result: { chunks: [], nextSeq: 1, exited: false, exitCode: null, closed: false, failure: null, sandboxDenied: false } };
      return undefined;
    });
    const client = await ExecClient.overTransport(first, {}, reopenerOf([resumed]));
    const handle = await client.exec(['sleep', '100'], { processId: 'p' });
    const terminate = handle.terminate();
    const read = client.fs.readFile('/etc/hostname');
    const mkdir = client.fs.createDirectory('/tmp/a/b');
    const signal = handle.signal('interrupt');
    const copy = client.fs.copy('/tmp/x', '/tmp/y');
    const remove = client.fs.remove('/tmp/z', { force: false });
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(first.received.map((m) => m.method).filter((m) => m !== 'initialize' && m !== 'initialized' && m !== 'process/start')).toEqual([
      'process/terminate',
      'fs/readFile',
      'fs/createDirectory',
      'process/signal',
      'fs/copy',
      'fs/remove',
    ]);
    first.drop();
    expect(await terminate).toBe(false);
    expect((await read).toString()).toBe('contents');
    await mkdir;
    for (const [call, method] of [
      [signal, 'process/signal'],
      [copy, 'fs/copy'],
      [remove, 'fs/remove'],
    ] as const) {
      const error = (await call.then(() => undefined, (e: unknown) => e)) as CallInterruptedError;
      expect(error).toBeInstanceOf(CallInterruptedError);
      expect(error.method).toBe(method);
      expect(error.message).toMatch(new RegExp(`^${method}: the stream to the executor ended before its answer \\(transport closed: the rendezvous socket closed \\(code 1006\\)\\); it may or may not have taken effect`));
    }
    expect(resumed.received.map((m) => m.method).filter((m) => m !== 'process/read')).toEqual(['initialize', 'initialized', 'process/terminate', 'fs/readFile', 'fs/createDirectory']);
    // The session goes on: a signal now is sent on the resumed stream.
    await handle.signal('interrupt');
    expect(resumed.received.at(-1)?.method).toBe('process/signal');
    client.close();
  });

  it('a process started during the recovery starts on the new stream once the session is resumed (nothing to catch up before)', async () => {
    const first = firstStream();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const resumed = new ScriptedTransport((message, transport) => {
      if (message.method === 'initialize') return { result: { sessionId: SESSION } };
      if (message.method === 'process/start') {
        queueMicrotask(() => {
          transport.push('process/output', { processId: 'q', seq: 1, stream: 'stdout', chunk: b64('q\n') });
          transport.push('process/exited', { processId: 'q', seq: 2, exitCode: 0, sandboxDenied: false });
          transport.push('process/closed', { processId: 'q', seq: 3 });
        });
        return { result: { processId: 'q' } };
      }
      return { error: { code: -32004, message: 'unknown process' } };
    });
    const client = await ExecClient.overTransport(first, {}, { policy: quickPolicy, isPermanent: () => false, reopen: async () => (await gate, resumed) });
    first.drop();
    const started = client.exec(['sh'], { processId: 'q' });
    await new Promise((resolve) => setTimeout(resolve, 5));
    open();
    const completion = await (await started).completion;
    expect({ stdout: completion.stdout.toString(), exitCode: completion.exitCode }).toEqual({ stdout: 'q\n', exitCode: 0 });
    expect(resumed.received.map((m) => m.method)).toEqual(['initialize', 'initialized', 'process/start']);
    expect(client.readsIssued).toBe(0);
    client.close();
  });

  it('output the executor no longer retains is an OutputLostError, never a hole', async () => {
    const first = firstStream();
    // codex says nothing of an eviction: its read just starts at the oldest chunk it still has.
    const resumed = resumedStream(() => ({ result: { chunks: [output(5, 'late\n')], nextSeq: 6, exited: false, exitCode: null, closed: false, failure: null } }));
    const client = await ExecClient.overTransport(first, {}, reopenerOf([resumed]));
    const handle = await client.exec(['sh'], { processId: 'p' });
    first.push('process/output', output(1, '1\n'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    first.drop();
    await expect(handle.completion).rejects.toBeInstanceOf(OutputLostError);
    client.close();
  });

  it('a permanent refusal ends recovery at once: processes and later calls fail naming it', async () => {
    const first = firstStream();
    const refusal = new Error('the relay names executor key hyb1:other for this environment, not the pinned hyb1:first: refused');
    const reopener = reopenerOf([refusal], (error) => error === refusal);
    const client = await ExecClient.overTransport(first, {}, reopener);
    const handle = await client.exec(['sh'], { processId: 'p' });
    first.drop();
    const expected = `the stream to the executor ended (the rendezvous socket closed (code 1006)); cannot resume the session: ${refusal.message}`;
    await expect(handle.completion).rejects.toThrow(expected);
    await expect(client.exec(['true'])).rejects.toThrow(expected);
    expect(reopener.opened).toBe(1);
  });

  it('the executor not knowing the session (-32004), or resuming another one, is final', async () => {
    for (const resumed of [
      new ScriptedTransport((message) => (message.method === 'initialize' ? { error: { code: -32004, message: 'unknown session: session-1' } } : undefined)),
      resumedStream(() => undefined, 'session-2'),
    ]) {
      const first = firstStream();
      const reopener = reopenerOf([resumed, resumedStream(() => undefined)]);
      const client = await ExecClient.overTransport(first, {}, reopener);
      const handle = await client.exec(['sh'], { processId: 'p' });
      first.drop();
      await expect(handle.completion).rejects.toThrow(/cannot resume the session: (unknown session: session-1|the executor resumed session session-2, not session-1)$/);
      expect(reopener.opened).toBe(1);
      expect(resumed.closed).toBe(true);
    }
  });

  it('gives up after the window; close() during a recovery stops it without waiting out the backoff', async () => {
    const first = firstStream();
    const client = await ExecClient.overTransport(first, {}, { policy: { timeoutMs: 200, backoff: { initialMs: 10, maxMs: 20 } }, isPermanent: () => false, reopen: async () => Promise.reject(new Error('connect ECONNREFUSED')) });
    const handle = await client.exec(['sh'], { processId: 'p' });
    first.drop();
    await expect(handle.completion).rejects.toThrow(/^the stream to the executor ended \(.*\); cannot resume the session within 0\.2 s \(\d+ attempts\); last: connect ECONNREFUSED$/);

    const second = firstStream();
    let attempts = 0;
    const slow = await ExecClient.overTransport(second, {}, { policy: { timeoutMs: 60_000, backoff: { initialMs: 30_000, maxMs: 30_000 } }, isPermanent: () => false, reopen: async () => (attempts++, Promise.reject(new Error('down'))) });
    const slowHandle = await slow.exec(['sh'], { processId: 'p' });
    second.drop();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = Date.now();
    slow.close();
    const error = (await slowHandle.completion.catch((e: Error) => e)) as Error;
    expect(Date.now() - started).toBeLessThan(1000);
    expect(error.message).toMatch(/the session was not resumed: the client was closed$/);
    expect(error.cause).toBeInstanceOf(SessionRecoveryError);
    expect(attempts).toBe(1);
  });

  it('without a reopener a closed transport fails the processes as before', async () => {
    const first = firstStream();
    const client = await ExecClient.overTransport(first, {});
    const handle = await client.exec(['sh'], { processId: 'p' });
    first.drop();
    await expect(handle.completion).rejects.toThrow('connection to the agent closed: the rendezvous socket closed (code 1006)');
  });
});
