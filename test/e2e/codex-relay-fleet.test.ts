import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateHybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { encodeRegistryPublicKey } from '../../src/noise-hybrid/registry-public-key.js';
import { ensureCodexInstalled } from '../support/codex-exec-server.js';
import { RENDEZVOUS_CONNECTED_LOG, startCodexRemoteExecutor, type CodexRemoteExecutor } from '../support/codex-remote-executor.js';
import { runCli, startCli } from '../support/cli.js';
import { fleetToolsInstalled, relayMetric, spawnFleetRelay, startNats, type FleetRelay, type NatsServer } from '../support/fleet-harness.js';

/**
 * Codex executors in a relay fleet (issue #15): the real `codex exec-server --remote` 0.169.0
 * registers at instance A; the execrelay CLI's `connect` and rendezvous socket land on instance B.
 * The registration is found through the fleet registry, the codex frames cross NATS on the fleet's
 * subjects, and each harness key authorization is good for one validation fleet-wide (its minter
 * is asked; a minter that cannot be asked means refused). Real relay processes of the built CLI, a
 * real nats-server, the real codex binary: one fleet start for the file. Skipped only off CI when
 * nats-server is missing (CI installs it); fails when the codex binary cannot be installed.
 */

const ENV = 'codex-fleet';
const EXECUTOR_TOKEN = 'codex-fleet-executor-token-0123456789';
const CLIENT_TOKEN = 'codex-fleet-client-token-0123456789ab';
const scratch = mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-fleet-e2e-'));
function file(name: string, text: string): string {
  const target = path.join(scratch, name);
  writeFileSync(target, text, { mode: 0o600 });
  return target;
}
const TOKENS = file('tokens', `${EXECUTOR_TOKEN} executor codex-*\n${CLIENT_TOKEN} client codex-*\n`);
const SECRET = file('fleet.secret', 'codex-fleet-shared-secret-0123456789abcdef\n');
const CLIENT_TOKEN_FILE = file('client.token', `${CLIENT_TOKEN}\n`);

const toolsMissing = !fleetToolsInstalled();
describe.skipIf(toolsMissing && !process.env.CI)(
  toolsMissing ? 'a codex executor in a relay fleet (skipped: apt-get install nats-server haproxy)' : 'a codex executor in a relay fleet',
  () => {
    let nats: NatsServer;
    let a: FleetRelay;
    let b: FleetRelay;
    let c: FleetRelay;
    const relays: FleetRelay[] = [];
    let executor: CodexRemoteExecutor | undefined;
    let keyFile: string;

    beforeAll(async () => {
      await ensureCodexInstalled();
      nats = await startNats();
      const args = ['--token-file', TOKENS, '--fleet-secret-file', SECRET];
      [a, b, c] = await Promise.all([spawnFleetRelay(nats, 'codex-a', args), spawnFleetRelay(nats, 'codex-b', args), spawnFleetRelay(nats, 'codex-c', args)]);
      relays.push(a, b, c);
      executor = await startCodexRemoteExecutor({ registry: `http://127.0.0.1:${a.port}`, environmentId: ENV, bearer: EXECUTOR_TOKEN });
      await executor.waitForLog(RENDEZVOUS_CONNECTED_LOG);
      keyFile = path.join(scratch, 'client-hybrid.key');
      const keygen = await runCli(['keygen', '--hybrid', '--out', keyFile]);
      expect(keygen.code, keygen.stderr).toBe(0);
    }, 600_000);
    afterAll(async () => {
      await executor?.stop();
      for (const relay of relays) await relay.kill('SIGKILL');
      await nats?.kill();
    });

    const execArgs = (relay: FleetRelay, command: string[]) => ['exec', '--relay', relay.url, '--env', ENV, '--token-file', CLIENT_TOKEN_FILE, '--key', keyFile, '--accept-relay-key', '--', ...command];
    const execAt = (relay: FleetRelay, command: string[]) => runCli(execArgs(relay, command), { timeoutMs: 60_000 });

    /** `POST /cloud/environment/ENV/ACTION` at `relay`: status and JSON body. */
    async function registry(relay: FleetRelay, action: 'connect' | 'validate', token: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
      const response = await fetch(`http://127.0.0.1:${relay.port}/cloud/environment/${ENV}/${action}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    }

    /** A `connect` at `relay` for a new harness key, and the `validate` body the executor would send for it. */
    async function authorizationFrom(relay: FleetRelay): Promise<Record<string, unknown>> {
      const harnessKey = encodeRegistryPublicKey(generateHybridKeyPair().publicKey);
      const connect = await registry(relay, 'connect', CLIENT_TOKEN, { harness_public_key: harnessKey });
      expect(connect.status, JSON.stringify(connect.body)).toBe(200);
      expect(connect.body.url).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${relay.port}/cloud/rendezvous\\?`));
      return { executor_registration_id: connect.body.executor_registration_id, harness_public_key: harnessKey, harness_key_authorization: connect.body.harness_key_authorization };
    }
    const validateAt = async (relay: FleetRelay, body: Record<string, unknown>) => (await registry(relay, 'validate', EXECUTOR_TOKEN, body)).body;

    it('exec through instance B runs on the codex executor registered at instance A: both lines on the right streams, exit 3, frames across NATS', async () => {
      const publishedBefore = await relayMetric(b, 'execrelay_relay_fleet_frames_total', { direction: 'published' });
      const result = await execAt(b, ['sh', '-c', 'echo hi; echo err >&2; exit 3']);
      expect(result.stdout).toBe('hi\n');
      expect(result.stderr).toMatch(/^execrelay exec: environment codex-fleet is a codex executor with key hyb1:[a-z2-7]{32} \(as the relay names it; pin it with --agent-key\)\nerr\n$/);
      expect(result.code).toBe(3);
      // B published the harness's frames to A, and A the executor's back to B.
      expect(await relayMetric(b, 'execrelay_relay_fleet_frames_total', { direction: 'published' })).toBeGreaterThan(publishedBefore);
      expect(await relayMetric(b, 'execrelay_relay_fleet_frames_total', { direction: 'received' })).toBeGreaterThan(0);
      expect(await relayMetric(a, 'execrelay_relay_streams_accepted_total', { security_profile: 'pq_hybrid' })).toBeGreaterThan(0);
      expect(await relayMetric(b, 'execrelay_relay_streams_accepted_total', { security_profile: 'pq_hybrid' })).toBe(0);
    });

    it('an authorization minted at one instance validates once fleet-wide: a replay at either instance is refused', async () => {
      const mintedAtB = await authorizationFrom(b);
      expect(await validateAt(a, mintedAtB)).toEqual({ valid: true });
      expect(await validateAt(a, mintedAtB)).toEqual({ valid: false });
      expect(await validateAt(b, mintedAtB)).toEqual({ valid: false });
      // Used first at its minter, then replayed elsewhere.
      const usedAtMinter = await authorizationFrom(b);
      expect(await validateAt(b, usedAtMinter)).toEqual({ valid: true });
      expect(await validateAt(a, usedAtMinter)).toEqual({ valid: false });
      expect(await validateAt(c, usedAtMinter)).toEqual({ valid: false });
      // Minted at A, where the executor is: validated on another instance, then replayed at A.
      const mintedAtA = await authorizationFrom(a);
      expect(await validateAt(c, mintedAtA)).toEqual({ valid: true });
      expect(await validateAt(a, mintedAtA)).toEqual({ valid: false });
    });

    it('an instance down: its authorizations are refused (fail closed); with the executor instance gone a running command elsewhere ends and a new client is refused, at once', async () => {
      const mintedAtC = await authorizationFrom(c);
      await c.kill('SIGKILL');
      let started = Date.now();
      expect(await validateAt(a, mintedAtC)).toEqual({ valid: false });
      expect(Date.now() - started).toBeLessThan(5_000);

      const running = await startCli(execArgs(b, ['sh', '-c', 'echo started; exec sleep 120']));
      expect(running.firstLine).toBe('started');
      const ended = new Promise<number | null>((resolve) => running.child.once('exit', (code) => resolve(code)));
      await a.kill('SIGKILL');
      started = Date.now();
      const code = await Promise.race([ended, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), 10_000).unref())]);
      await running.stop();
      expect(code).not.toBe('still running');
      expect(code).not.toBe(0);
      expect(running.stderr()).toMatch(/executor_unavailable/);
      expect(Date.now() - started).toBeLessThan(8_000);

      started = Date.now();
      const refused = await execAt(b, ['echo', 'never']);
      expect(refused.stdout).toBe('');
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/executor_unavailable/);
      expect(Date.now() - started).toBeLessThan(8_000);
    });
  },
);
