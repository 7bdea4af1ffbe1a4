import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CodexRegistry, type CodexRegistryFleet } from '../../../relay/codex-registry.js';
import { CodexRendezvousRouter } from '../../../relay/codex-rendezvous-router.js';
import { MemoryBindings } from '../../../relay/environment-bindings.js';
import type { AuthorizationMinter, AuthorizationUse } from '../../../relay/fleet-authorizations.js';
import type { EnvironmentEntry } from '../../../relay/fleet-wire.js';
import { DEFAULT_RELAY_LIMITS } from '../../../relay/relay-config.js';
import { RelayCredentials } from '../../../relay/relay-credentials.js';
import { NO_RELAY_EVENTS } from '../../../relay/relay-events.js';
import { RendezvousSigner } from '../../../relay/rendezvous-signer.js';
import { CODEX_REGISTRY_PATH_PATTERN, type CodexRegistryAction } from '../../../src/codex-registry/registry-endpoints.js';
import { createLogger } from '../../../src/logging/logger.js';
import { hybridFingerprint } from '../../../src/noise-hybrid/hybrid-fingerprint.js';
import { generateHybridKeyPair } from '../../../src/noise-hybrid/hybrid-keys.js';
import { encodeRegistryPublicKey, parseRegistryPublicKey } from '../../../src/noise-hybrid/registry-public-key.js';

/**
 * The codex registry of a relay fleet instance that does not hold the executor (`connect` and
 * `validate` on instance B for an executor registered at A), with a stand-in for the fleet: the
 * registration comes from the registry entry, every use of an authorization is asked of the fleet,
 * and whatever the fleet cannot answer is refused.
 */

const EXECUTOR = 'fleet-registry-executor-token-0123';
const CLIENT = 'fleet-registry-client-token-012345';
const { credentials } = RelayCredentials.parse(`${EXECUTOR} executor fl-*\n${CLIENT} client fl-*\n`, 'tokens');
const executorCredential = (credentials.check(`Bearer ${EXECUTOR}`, 'executor', 'fl-env') as { credential: { id: string } }).credential.id;
const executorKey = generateHybridKeyPair().publicKey;
const secret = Buffer.from('a-fleet-secret-of-at-least-32-bytes-for-tests', 'utf8');
const SELF: AuthorizationMinter = { instance: 'relay-b', boot: 'bootB' };

/** What the fake fleet answers now. */
let entry: EnvironmentEntry | null | 'nats-down';
let use: AuthorizationUse;
const uses: { minter: AuthorizationMinter | null; nonce: string }[] = [];
const fleet: CodexRegistryFleet = {
  minter: SELF,
  async codexRegistrationElsewhere() {
    if (entry === 'nats-down') throw new Error('NATS unavailable');
    return entry;
  },
  async useAuthorization(minter, nonce) {
    uses.push({ minter, nonce });
    return use;
  },
};
const heldAtA = (): EnvironmentEntry => ({
  instance: 'relay-a',
  boot: 'bootA',
  registeredAt: Date.now(),
  codex: { registrationId: 'reg-at-a', credentialId: executorCredential, executorKey: encodeRegistryPublicKey(executorKey) },
});

let server: http.Server;
let base: string;
const router = new CodexRendezvousRouter(DEFAULT_RELAY_LIMITS, createLogger('test', 'silent'), () => 1);

beforeAll(async () => {
  const registry = new CodexRegistry({
    credentials: () => credentials,
    bindings: new MemoryBindings(100),
    signer: RendezvousSigner.fromFleetSecret(secret),
    router,
    nativeExecutorLive: () => false,
    limits: DEFAULT_RELAY_LIMITS,
    logger: createLogger('test', 'silent'),
    events: NO_RELAY_EVENTS,
    tls: false,
    fleet,
  });
  server = http.createServer((req, res) => {
    const match = CODEX_REGISTRY_PATH_PATTERN.exec(new URL(req.url ?? '/', 'http://x').pathname);
    void registry.handle(req, res, match![1]!, match![2] as CodexRegistryAction);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  router.stop();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  entry = heldAtA();
  use = 'fresh';
  uses.length = 0;
});

async function post(action: 'connect' | 'validate', token: string, body: unknown): Promise<{ status: number; body: Record<string, any> }> {
  const response = await fetch(`${base}/cloud/environment/fl-env/${action}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

async function connect() {
  const harnessKey = encodeRegistryPublicKey(generateHybridKeyPair().publicKey);
  const answer = await post('connect', CLIENT, { harness_public_key: harnessKey });
  return { answer, harnessKey };
}

describe('a fleet instance that does not hold the codex executor', () => {
  it('connect answers the registration of the instance that holds it, a harness URL here, and an authorization naming this process as its minter', async () => {
    const { answer, harnessKey } = await connect();
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ environment_id: 'fl-env', executor_registration_id: 'reg-at-a', executor_public_key: encodeRegistryPublicKey(executorKey) });
    expect(answer.body.url).toMatch(new RegExp(`^${base.replace('http', 'ws').replace(/\./g, '\\.')}/cloud/rendezvous\\?`));
    const check = RendezvousSigner.fromFleetSecret(secret).verifyAuthorization(answer.body.harness_key_authorization, {
      environmentId: 'fl-env',
      registrationId: 'reg-at-a',
      harnessFingerprint: hybridFingerprint(parseRegistryPublicKey(harnessKey, 'harness_public_key')),
    });
    expect(check).toMatchObject({ ok: true, minter: SELF });
  });

  it('connect: nobody holding it is 404 executor_unavailable, an entry with an invalid key too, NATS down 503 fleet_unavailable', async () => {
    entry = null;
    expect((await connect()).answer).toMatchObject({ status: 404, body: { error: { code: 'executor_unavailable' } } });
    entry = { ...heldAtA(), codex: { ...heldAtA().codex!, executorKey: { suite: 'Noise_hybridIK_X25519+MLKEM768_AESGCM_SHA256', x25519_public_key: 'AAAA', mlkem768_public_key: 'AAAA' } } };
    expect((await connect()).answer).toMatchObject({ status: 404, body: { error: { code: 'executor_unavailable' } } });
    entry = 'nats-down';
    expect((await connect()).answer).toMatchObject({ status: 503, body: { error: { code: 'fleet_unavailable' } } });
  });

  it('validate checks the registration from the entry and asks the fleet to use the nonce: valid once, then refused; unanswerable is refused', async () => {
    const { answer, harnessKey } = await connect();
    const body = { executor_registration_id: 'reg-at-a', harness_public_key: harnessKey, harness_key_authorization: answer.body.harness_key_authorization };
    expect((await post('validate', EXECUTOR, body)).body).toEqual({ valid: true });
    expect(uses).toEqual([{ minter: SELF, nonce: expect.stringMatching(/^[0-9a-f]{32}$/) }]);
    use = 'replayed';
    expect((await post('validate', EXECUTOR, body)).body).toEqual({ valid: false });
    use = 'unavailable';
    expect((await post('validate', EXECUTOR, body)).body).toEqual({ valid: false });
    // Nothing is used when the registration does not match: the fleet is not asked.
    const asked = uses.length;
    use = 'fresh';
    expect((await post('validate', EXECUTOR, { ...body, executor_registration_id: 'reg-other' })).body).toEqual({ valid: false });
    entry = { ...heldAtA(), codex: { ...heldAtA().codex!, credentialId: 'another-cred' } };
    expect((await post('validate', EXECUTOR, body)).body).toEqual({ valid: false });
    entry = 'nats-down';
    expect((await post('validate', EXECUTOR, body)).body).toEqual({ valid: false });
    entry = null;
    expect((await post('validate', EXECUTOR, body)).body).toEqual({ valid: false });
    expect(uses.length).toBe(asked);
  });
});
