/**
 * `execrelay agent --relay URL --wire codex` (a real agent process) reached by the execrelay CLI
 * client through a real relay over the codex wire: output on the right streams and the exit code,
 * the pinned `hyb1:` key, a client outside the agent's authorized clients refused with a clear
 * reason while the agent keeps serving, and restarts (the agent's: same key; the relay's: the agent
 * registers again by itself).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientNotAuthorizedError } from '../../src/client/client-not-authorized-error.js';
import { hybridFingerprint } from '../../src/noise-hybrid/hybrid-fingerprint.js';
import { writeHybridKeyFile } from '../../src/noise-hybrid/hybrid-key-file.js';
import { generateHybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { runCli } from '../support/cli.js';
import { startCodexWireAgent, type CodexWireAgent } from '../support/codex-wire-agent.js';
import { startRelay, type RelayFixture } from '../support/relay-harness.js';
import { hasTinyproxy, startTinyproxy } from '../support/tinyproxy.js';

const ENV = 'codex-wire-agent';

describe('execrelay agent --wire codex through the relay', () => {
  let relay: RelayFixture;
  let agent: CodexWireAgent;

  /** `execrelay exec` as the authorized client (or with `key`), pinning the agent key unless `pin` says otherwise. */
  const exec = (command: string[], options: { key?: string; pin?: string[] } = {}) =>
    runCli(
      [
        'exec',
        '--relay',
        relay.url,
        '--env',
        ENV,
        '--token-file',
        path.join(agent.dir, 'token'),
        '--key',
        options.key ?? path.join(agent.dir, 'client.hkey'),
        ...(options.pin ?? ['--agent-key', agent.fingerprint]),
        '--',
        ...command,
      ],
      { timeoutMs: 30_000 },
    );

  beforeAll(async () => {
    relay = await startRelay();
    agent = await startCodexWireAgent(relay.url, ENV);
  });
  afterAll(async () => {
    await agent?.stop();
    await relay?.stop();
  });

  it('prints the hyb1: fingerprint of its key; exec with --accept-relay-key prints both lines on the right streams and exits 3', async () => {
    expect(agent.fingerprint).toMatch(/^hyb1:[a-z2-7]{32}$/);
    const result = await exec(['sh', '-c', 'echo hi; echo err >&2; exit 3'], { pin: ['--accept-relay-key'] });
    expect(result.stdout).toBe('hi\n');
    expect(result.stderr).toContain('err\n');
    // The relay named the key: the client says which one, so that it can be pinned.
    expect(result.stderr).toContain(agent.fingerprint);
    expect(result.code).toBe(3);
  });

  it('serves a client pinning its key; refuses a client outside its authorized clients with a clear reason, and keeps serving', async () => {
    expect(await exec(['echo', 'pinned'])).toMatchObject({ code: 0, stdout: 'pinned\n' });
    const strangerKey = path.join(agent.dir, 'stranger.hkey');
    const stranger = generateHybridKeyPair();
    const strangerId = hybridFingerprint(stranger.publicKey);
    await writeHybridKeyFile(strangerKey, stranger);
    const refused = await exec(['echo', 'never'], { key: strangerKey });
    expect(refused.code).toBe(255);
    expect(refused.stdout).toBe('');
    // Named as the native client names it: this client's own hyb1: fingerprint and the command that lets it in.
    const named = `the agent refused this client (${strangerId}): not in its authorized clients; on the agent's host run: execrelay authorize --authorized-clients FILE ${strangerId}`;
    expect(refused.stderr).toContain(named);
    expect(refused.stderr).not.toMatch(/handshake was refused/);
    const libraryRefusal = await agent.connectClient(stranger).then(
      (client) => (client.close(), undefined),
      (error: unknown) => error,
    );
    expect(libraryRefusal).toBeInstanceOf(ClientNotAuthorizedError);
    expect(libraryRefusal).toMatchObject({ clientIdentity: strangerId, message: named });
    expect(agent.stderr()).toMatch(/client not in the authorized clients file/);
    expect(await exec(['echo', 'still serving'])).toMatchObject({ code: 0, stdout: 'still serving\n' });
  });

  it('pushed events complete a command and 1 MB of output with no process/read (the library client)', async () => {
    const client = await agent.connectClient();
    try {
      const handle = await client.exec(['sh', '-c', 'echo hi; echo err >&2; head -c 1000000 /dev/zero | tr "\\0" x; exit 3'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      const completion = await handle.completion;
      expect(completion.exitCode).toBe(3);
      expect(completion.stderr.toString()).toBe('err\n');
      expect(completion.stdout.length).toBe(3 + 1_000_000);
      expect(client.readsIssued).toBe(0);
      expect(client.agentIdentity).toBe(agent.fingerprint);
    } finally {
      client.close();
    }
  });

  it('a pin on another key is refused before the agent sees a handshake', async () => {
    const other = `hyb1:${'a'.repeat(32)}`;
    const result = await exec(['echo', 'never'], { pin: ['--agent-key', other] });
    expect(result.code).toBe(255);
    expect(result.stderr).toContain(`not the pinned ${other}`);
  });

  it('keeps its identity across a restart: the pinned hyb1: key still works', async () => {
    await agent.restart(); // throws when the restarted agent prints another fingerprint
    expect(await exec(['echo', 'same key'])).toMatchObject({ code: 0, stdout: 'same key\n' });
  });

  it('misuse of --wire codex is a clear one-line error, exit 255', async () => {
    const edKey = path.join(agent.dir, 'ed25519.key');
    const keygen = await runCli(['keygen', '--out', edKey]);
    expect(keygen.code).toBe(0);
    // An authorized clients file listing an Ed25519 identity (the native wire's) where hyb1: fingerprints belong.
    writeFileSync(path.join(agent.dir, 'ed-authorized'), keygen.stdout, { mode: 0o600 });
    const base = ['agent', '--wire', 'codex', '--relay', relay.url, '--environment-id', 'codex-misuse', '--token-file', path.join(agent.dir, 'token')];
    const cases: Array<[string[], RegExp]> = [
      [['agent', '--wire', 'codex'], /--wire codex needs --relay URL/],
      [base, /--wire codex needs --key FILE holding a hybrid key \(create one with: execrelay keygen --hybrid --out FILE\)/],
      [[...base, '--key', edKey], /--key: .*not a valid execrelay hybrid key file.*execrelay keygen --hybrid --out FILE/],
      [[...base, '--key', path.join(agent.dir, 'agent.hkey'), '--authorized-clients', path.join(agent.dir, 'ed-authorized')], /--authorized-clients: .* line 1: 12D3KooW\S* is not a hybrid key fingerprint: --wire codex serves clients by their hyb1: fingerprint/],
      [['agent', '--wire', 'bogus'], /argument 'bogus' is invalid\. Allowed choices are native, codex/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args)));
    for (const [index, result] of results.entries()) {
      expect(result.code, cases[index]![0].join(' ')).toBe(255);
      expect(result.stderr).toMatch(cases[index]![1]);
    }
  });

  it.skipIf(!hasTinyproxy() && !process.env.CI)('--proxy: the registry calls (register, each handshake\'s validate) and the rendezvous socket go through an HTTP CONNECT proxy (tinyproxy logs each) and clients reach it; a refusing proxy is named and the agent exits 255', async () => {
    if (!hasTinyproxy()) throw new Error('CI is set but tinyproxy is not installed; install with: apt-get install -y tinyproxy');
    const proxy = await startTinyproxy();
    // Tunnels only to 443: a CONNECT to the relay's port is refused 403.
    const refusing = await startTinyproxy({ connectPorts: [443] });
    let proxied: CodexWireAgent | undefined;
    try {
      const port = new URL(relay.url).port;
      const connects = () => proxy.log().split(`CONNECT 127.0.0.1:${port} HTTP/1.1`).length - 1;
      proxied = await startCodexWireAgent(relay.url, 'codex-wire-proxied', ['--proxy', proxy.url]);
      expect(connects()).toBe(2);
      expect(proxied.stderr()).toContain('reaching the relay through an HTTP CONNECT proxy');
      const client = await proxied.connectClient();
      try {
        expect((await (await client.exec(['echo', 'behind a proxy'], { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } })).completion).stdout.toString()).toBe('behind a proxy\n');
      } finally {
        client.close();
      }
      // The agent's `/validate` of that client's authorization went through the proxy too.
      expect(connects()).toBe(3);
      const base = ['agent', '--wire', 'codex', '--relay', relay.url, '--environment-id', 'codex-wire-refused', '--token-file', path.join(agent.dir, 'token'), '--key', path.join(agent.dir, 'agent.hkey'), '--allow-any-client'];
      const refused = await runCli([...base, '--proxy', refusing.url], { timeoutMs: 30_000 });
      expect(refused.code).toBe(255);
      expect(refused.stdout).toBe('');
      expect(refused.stderr).toContain(`proxy ${refusing.url} refused to connect to relay 127.0.0.1:${port}: HTTP 403 Access violation`);
    } finally {
      await proxied?.stop();
      await proxy.stop();
      await refusing.stop();
    }
  });

  it('registers again by itself after the relay restarts', async () => {
    const port = Number(new URL(relay.url).port);
    const registered = 'registered with the relay (codex wire)';
    const before = agent.stderr().split(registered).length - 1;
    await relay.stop();
    relay = await startRelay({}, port);
    // The new relay has a new signing secret and no registration: the agent registers again through its reconnect loop.
    await agent.waitForLog(registered, before + 1);
    expect(await exec(['echo', 'after relay restart'])).toMatchObject({ code: 0, stdout: 'after relay restart\n' });
  });

  it('a library client mid-command across a relay restart: a stdin write in flight is made once on the resumed stream, output once, exit code', async () => {
    const port = Number(new URL(relay.url).port);
    const client = await agent.connectClient();
    try {
      const handle = await client.exec(['sh', '-c', 'echo ready; read line; echo "got $line"; exit 5'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, pipeStdin: true, streamEvents: true });
      const events = handle.events[Symbol.asyncIterator]();
      expect((await events.next()).value).toMatchObject({ type: 'output' });
      // Sent on the stream the relay's stop ends before any answer comes back.
      const write = handle.write('hello\n', { closeStdin: true });
      await relay.stop();
      relay = await startRelay({}, port);
      expect(await write).toBe('accepted');
      const completion = await handle.completion;
      expect(completion.stdout.toString()).toBe('ready\ngot hello\n');
      expect(completion.exitCode).toBe(5);
      expect(client.sessionRecoveries).toBe(1);
    } finally {
      client.close();
    }
  }, 60_000);
});
