/**
 * Attacks on the agent's shared capacity by another client (issue "Trust model", findings 9 and
 * 12), replayed against real agents:
 *
 * - finding 9: an attacker identity opens 300 sessions through the relay (initialize, drop the
 *   connection). Sessions are now counted per client identity (`maxSessionsPerClient`), so the
 *   attacker only ever evicts its own oldest detached sessions and a victim identity still
 *   initializes and runs a command whose numbered output loses no line.
 * - finding 12: 40 concurrent 20 MiB `fs/readFile` calls on one connection, against a separate
 *   `execrelay agent` process whose RSS is sampled from /proc. Requests per connection are limited
 *   (`maxConcurrentRequests`) and large responses are admitted against in-flight byte budgets, so
 *   the agent stays small, all 40 answers are correct and a victim connection answers quickly.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { generateIdentity, type Identity } from '../../src/noise/identity.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { connectThroughRelay, relayTarget, startRelay, startRemoteAgent, type RelayFixture, type RemoteAgentFixture } from '../support/relay-harness.js';
import { startCli } from '../support/cli.js';
import { RawRpcClient } from '../support/raw-rpc-client.js';

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

/** Runs `seq 1 N` as the victim and checks every numbered line arrived, in order. */
async function runNumberedLines(client: ExecClient, lines: number): Promise<void> {
  const handle = await client.exec(['seq', '1', String(lines)], { cwd: os.tmpdir() });
  const completion = await handle.completion;
  expect(completion.exitCode).toBe(0);
  const got = completion.stdout.toString().trimEnd().split('\n');
  expect(got.length).toBe(lines);
  expect(got.every((line, i) => line === String(i + 1))).toBe(true);
}

describe('finding 9: one identity cannot use up the sessions of another', () => {
  let relay: RelayFixture;
  let remote: RemoteAgentFixture;
  let attacker: Identity;
  let victim: Identity;

  beforeAll(async () => {
    relay = await startRelay();
    remote = await startRemoteAgent(relay.url, 'env-bounds'); // the defaults: 256 sessions, 32 per client
    [attacker, victim] = await Promise.all([generateIdentity(), generateIdentity()]);
  });
  afterAll(async () => {
    remote?.stop();
    await relay?.stop();
  });

  it('300 sessions opened and dropped by an attacker leave the victim room to initialize and run', async () => {
    const attackerSessions = new Set<string>();
    const refusals: string[] = [];
    for (let batch = 0; batch < 300; batch += 10) {
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          try {
            const client = await connectThroughRelay(relay.url, remote, { identity: attacker });
            attackerSessions.add(client.sessionId);
            client.close();
          } catch (error) {
            refusals.push((error as Error).message);
          }
        }),
      );
    }
    // Every refusal the attacker saw names the limit; most of its initializes evicted its own
    // oldest detached session instead.
    for (const message of refusals) expect(message).toMatch(/too many sessions for this client identity \(limit 32\)/);
    expect(attackerSessions.size + refusals.length).toBe(300);
    expect(remote.agent.registry.sessionsOf(`relay:${attacker.publicIdentity}`)).toBeLessThanOrEqual(32);
    expect(remote.agent.registry.size).toBeLessThanOrEqual(32 + 10);
    console.log(`attacker: ${attackerSessions.size} sessions opened, ${refusals.length} refused; agent holds ${remote.agent.registry.size} sessions`);

    const client = await connectThroughRelay(relay.url, remote, { identity: victim });
    cleanup.push(() => client.close());
    await runNumberedLines(client, 5000);
  }, 180_000);

  it('an identity with every session attached gets the quota error; it never takes another identity\'s room', async () => {
    const holder = await generateIdentity(); // its own identity: test 1's drops may still be in flight
    const held: ExecClient[] = [];
    cleanup.push(() => held.forEach((c) => c.close()));
    for (let batch = 0; batch < 32; batch += 8) {
      held.push(...(await Promise.all(Array.from({ length: 8 }, () => connectThroughRelay(relay.url, remote, { identity: holder })))));
    }
    await expect(connectThroughRelay(relay.url, remote, { identity: holder })).rejects.toThrow(
      'too many sessions for this client identity (limit 32); close or resume one of its sessions',
    );
    const client = await connectThroughRelay(relay.url, remote, { identity: victim });
    cleanup.push(() => client.close());
    await runNumberedLines(client, 1000);
  }, 120_000);
});

describe('a session belongs to the identity that opened it', () => {
  it('another authorized identity cannot resume it (the session id is unknown to it); its owner can', async () => {
    const relay = await startRelay();
    cleanup.push(() => relay.stop());
    const remote = await startRemoteAgent(relay.url, 'env-session-owner');
    cleanup.push(() => remote.stop());
    const [owner, other] = await Promise.all([generateIdentity(), generateIdentity()]);
    const first = await connectThroughRelay(relay.url, remote, { identity: owner });
    const sessionId = first.sessionId;
    first.close();
    await expect(ExecClient.connect(relayTarget(relay.url, remote, { identity: other }), { resumeSessionId: sessionId })).rejects.toThrow(
      `unknown or expired session: ${sessionId}`,
    );
    const again = await ExecClient.connect(relayTarget(relay.url, remote, { identity: owner }), { resumeSessionId: sessionId });
    cleanup.push(() => again.close());
    expect(again.sessionId).toBe(sessionId);
    await runNumberedLines(again, 100);
  }, 60_000);
});

/** The agent process's resident set size in MiB, from /proc/PID/status. */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) / 1024 : 0;
}

describe('finding 12: one connection\'s requests cannot exhaust the agent', () => {
  let dir: string;
  let file: string;
  let expected: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bounds-'));
    file = path.join(dir, 'big.bin');
    const data = randomBytes(20 * 1024 * 1024);
    expected = createHash('sha256').update(data).digest('hex');
    await writeFile(file, data);
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('40 concurrent 20 MiB fs/readFile: bounded RSS, every answer correct, a victim answers quickly', async () => {
    const agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0'], { EXECRELAY_LOG_LEVEL: 'warn' });
    cleanup.push(() => agent.stop());
    const url = agent.firstLine;
    const pid = agent.child.pid!;

    // The victim: its own connection, initialized before the attack.
    const victim = await RawRpcClient.connect(url);
    cleanup.push(() => victim.close());
    await victim.initialize();

    // The attacker: a bare socket that keeps only a checksum of each answer (not 800 MiB of text).
    const socket = new WebSocket(url, { maxPayload: 256 * 1024 * 1024 });
    cleanup.push(() => socket.terminate());
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const answers = new Map<number, string>();
    let answered: () => void = () => undefined;
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id: number; result?: { dataBase64?: string; sessionId?: string }; error?: { message: string } };
      const digest = message.result?.dataBase64 !== undefined
        ? createHash('sha256').update(Buffer.from(message.result.dataBase64, 'base64')).digest('hex')
        : message.error ? `error: ${message.error.message}` : 'ok';
      answers.set(message.id, digest);
      answered();
    });
    const allAnswered = (count: number) =>
      new Promise<void>((resolve) => {
        answered = () => {
          if (answers.size >= count) resolve();
        };
        answered();
      });
    socket.send(JSON.stringify({ id: 0, method: 'initialize', params: { clientName: 'attacker' } }));
    await allAnswered(1);

    let peakRss = await rssMiB(pid);
    const baseline = peakRss;
    const sampler = setInterval(() => {
      void rssMiB(pid).then((rss) => (peakRss = Math.max(peakRss, rss)), () => undefined);
    }, 25);
    cleanup.push(() => clearInterval(sampler));

    const started = Date.now();
    for (let id = 1; id <= 40; id++) socket.send(JSON.stringify({ id, method: 'fs/readFile', params: { path: pathToFileURL(file).href } }));
    const done = allAnswered(41);

    // While the 40 reads are in flight, the victim's small request must still answer quickly.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const victimStarted = Date.now();
    const reply = await victim.request('fs/getMetadata', { path: pathToFileURL(dir).href }, 60_000);
    const victimMs = Date.now() - victimStarted;
    expect(reply.error).toBeUndefined();

    await done;
    clearInterval(sampler);
    peakRss = Math.max(peakRss, await rssMiB(pid));
    console.log(
      `agent RSS baseline ${baseline.toFixed(0)} MiB, peak ${peakRss.toFixed(0)} MiB; victim answered in ${victimMs} ms; 40 reads took ${Date.now() - started} ms`,
    );
    for (let id = 1; id <= 40; id++) expect(answers.get(id), `read ${id}`).toBe(expected);
    expect(victimMs).toBeLessThan(3000);
    expect(peakRss).toBeLessThan(600);
  }, 180_000);
});
