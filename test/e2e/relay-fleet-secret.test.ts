import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { CODEX_REJECTION_REASON_HEADER, CODEX_SECURITY_PROFILE } from '../../src/codex-registry/registry-endpoints.js';
import { generateHybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { encodeRegistryPublicKey } from '../../src/noise-hybrid/registry-public-key.js';
import { runCli } from '../support/cli.js';
import { fleetToolsInstalled, spawnFleetRelay, startNats, type FleetRelay, type NatsServer } from '../support/fleet-harness.js';
import { TEST_TOKEN } from '../support/relay-harness.js';

/**
 * `execrelay relay --fleet-secret-file`: the instances of a fleet that share one secret verify each
 * other's signed codex rendezvous URLs (issue #15, third stop, the first part of codex executors in
 * a fleet). Real relay processes of the built CLI and a real nats-server.
 */

const scratch = mkdtempSync(path.join(os.tmpdir(), 'execrelay-fleet-secret-e2e-'));
function file(name: string, text: string, mode = 0o600): string {
  const target = path.join(scratch, name);
  writeFileSync(target, text, { mode });
  return target;
}
const SHARED = file('shared.secret', 'the-shared-fleet-secret-0123456789abcdef\n');
const OTHER = file('other.secret', 'another-fleet-secret-0123456789abcdefghij\n');

describe('the relay command refuses a bad --fleet-secret-file with a clear message', () => {
  const tokens = file('tokens', `${TEST_TOKEN}\n`);
  const base = ['relay', '--listen', '127.0.0.1:0', '--token-file', tokens];

  it('without --nats, a short secret, a group-readable file, a missing file', async () => {
    const alone = await runCli([...base, '--fleet-secret-file', SHARED]);
    expect(alone.code).not.toBe(0);
    expect(alone.stderr).toMatch(/--fleet-secret-file is shared by the instances of a fleet; give --nats too/);
    // nats://127.0.0.1:1 is never reached: the secret is read first.
    const short = await runCli([...base, '--nats', 'nats://127.0.0.1:1', '--fleet-secret-file', file('short.secret', 'too-short\n')]);
    expect(short.code).not.toBe(0);
    expect(short.stderr).toMatch(/holds a secret of 9 bytes; it must be at least 32/);
    const open = await runCli([...base, '--nats', 'nats://127.0.0.1:1', '--fleet-secret-file', file('open.secret', 'x'.repeat(40), 0o644)]);
    expect(open.code).not.toBe(0);
    expect(open.stderr).toMatch(/fleet secret file .*open\.secret has mode 0644; it must not be accessible by group or others/);
    const missing = await runCli([...base, '--nats', 'nats://127.0.0.1:1', '--fleet-secret-file', path.join(scratch, 'nope')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/cannot read fleet secret file .*nope: ENOENT/);
  }, 60_000);
});

const toolsMissing = !fleetToolsInstalled();
/** Skipped only off CI, like the fleet suite: CI installs nats-server. */
describe.skipIf(toolsMissing && !process.env.CI)(
  toolsMissing ? 'fleet instances sharing a fleet secret (skipped: apt-get install nats-server)' : 'fleet instances sharing a fleet secret',
  () => {
    let nats: NatsServer;
    const relays: FleetRelay[] = [];
    let a: FleetRelay;
    let b: FleetRelay;
    let c: FleetRelay;

    beforeAll(async () => {
      nats = await startNats();
      a = await spawnFleetRelay(nats, 'relay-a', ['--fleet-secret-file', SHARED]);
      relays.push(a);
      b = await spawnFleetRelay(nats, 'relay-b', ['--fleet-secret-file', SHARED]);
      relays.push(b);
      c = await spawnFleetRelay(nats, 'relay-c', ['--fleet-secret-file', OTHER]);
      relays.push(c);
    }, 60_000);
    afterAll(async () => {
      for (const relay of relays) await relay.kill('SIGKILL');
      await nats?.kill();
    });

    /** The status and rejection reason of a rendezvous upgrade to `relay` with `signedUrl`'s query (or 101). */
    function upgrade(relay: FleetRelay, signedUrl: string): Promise<{ status: number; reason: string | undefined }> {
      const target = new URL(signedUrl);
      target.host = `127.0.0.1:${relay.port}`;
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(target);
        ws.once('upgrade', () => {
          ws.close();
          resolve({ status: 101, reason: undefined });
        });
        ws.once('unexpected-response', (_req, res) => {
          resolve({ status: res.statusCode ?? 0, reason: res.headers[CODEX_REJECTION_REASON_HEADER] as string | undefined });
          res.resume();
          ws.terminate();
        });
        ws.once('error', (error) => reject(error));
      });
    }

    it('a rendezvous URL signed by one instance passes the signature check on another with the same secret, and fails it on one with another secret', async () => {
      const key = generateHybridKeyPair();
      const response = await fetch(`http://127.0.0.1:${a.port}/cloud/environment/fleet-secret-env/register`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ security_profile: CODEX_SECURITY_PROFILE, executor_public_key: encodeRegistryPublicKey(key.publicKey) }),
      });
      expect(response.status).toBe(200);
      const { url } = (await response.json()) as { url: string };
      // Where it was signed, the executor's socket opens.
      expect(await upgrade(a, url)).toEqual({ status: 101, reason: undefined });
      // B verifies A's signature; an executor's socket opens only where it registered, so B answers
      // unknown_route, which a codex executor answers by registering again.
      expect(await upgrade(b, url)).toEqual({ status: 404, reason: 'unknown_route' });
      // C, with another fleet secret, refuses the signature itself.
      expect(await upgrade(c, url)).toEqual({ status: 403, reason: 'invalid_signature' });
      // A URL whose signature was tampered with fails on every instance.
      const tampered = new URL(url);
      tampered.searchParams.set('environment_id', 'fleet-secret-other');
      for (const relay of [a, b]) expect(await upgrade(relay, tampered.toString())).toEqual({ status: 403, reason: 'invalid_signature' });
    }, 60_000);
  },
);
