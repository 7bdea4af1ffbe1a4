import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CodexRegistry, type CodexRegistryFleet } from '../../../relay/codex-registry.js';
import { CodexRendezvousRouter } from '../../../relay/codex-rendezvous-router.js';
import { MemoryBindings } from '../../../relay/environment-bindings.js';
import { FleetRegistrations } from '../../../relay/fleet-registrations.js';
import { FleetSubject, registrationMinter } from '../../../relay/fleet-wire.js';
import { DEFAULT_RELAY_LIMITS, type RelayLimits } from '../../../relay/relay-config.js';
import { RelayCredentials } from '../../../relay/relay-credentials.js';
import { NO_RELAY_EVENTS, type RelayEvents } from '../../../relay/relay-events.js';
import { RendezvousSigner, type RendezvousGrant } from '../../../relay/rendezvous-signer.js';
import { CODEX_REGISTRY_PATH_PATTERN, CODEX_SECURITY_PROFILE, type CodexRegistryAction } from '../../../src/codex-registry/registry-endpoints.js';
import { createLogger } from '../../../src/logging/logger.js';
import { hybridFingerprint } from '../../../src/noise-hybrid/hybrid-fingerprint.js';
import { generateHybridKeyPair } from '../../../src/noise-hybrid/hybrid-keys.js';
import { encodeRegistryPublicKey } from '../../../src/noise-hybrid/registry-public-key.js';
import { InMemoryNats } from '../../support/in-memory-nats.js';

/**
 * A codex executor's rendezvous socket on another fleet instance than the one it registered with
 * (behind a balancer): that instance claims the registration from its minter, named in the
 * registration id, over an in-memory stand-in for NATS request/reply (a subject nobody subscribes
 * gets no answer, as NATS's "no responders"). Handed over once; every other use is refused.
 */

const EXECUTOR = 'handover-executor-token-0123456789';
const OTHER_EXECUTOR = 'handover-other-executor-token-0123';
const { credentials } = RelayCredentials.parse(`${EXECUTOR} executor ho-*\n${OTHER_EXECUTOR} executor ho-*\n`, 'tokens');
const signer = RendezvousSigner.fromFleetSecret(Buffer.from('a-fleet-secret-of-at-least-32-bytes-for-tests', 'utf8'));
const logger = createLogger('test', 'silent');

const nats = new InMemoryNats();
const errors: string[] = [];
const events: RelayEvents = { ...NO_RELAY_EVENTS, fleetError: (kind) => void errors.push(kind) };

/** One fleet instance: its codex registry on a real HTTP listener, its FleetRegistrations on the stand-in NATS. */
interface Instance {
  readonly registry: CodexRegistry;
  readonly bindings: MemoryBindings;
  readonly base: string;
  readonly server: http.Server;
  readonly router: CodexRendezvousRouter;
}
const instances: Instance[] = [];

async function instance(name: string, limits: RelayLimits = DEFAULT_RELAY_LIMITS, bindings = new MemoryBindings(100)): Promise<Instance> {
  const minter = { instance: name, boot: `boot${name}` };
  const connection = nats.connection(events);
  const registrations = new FleetRegistrations(minter, () => connection, logger);
  registrations.subscribe();
  const fleet: CodexRegistryFleet = {
    minter,
    codexRegistrationElsewhere: async () => null,
    useAuthorization: async () => 'fresh',
    claimRegistration: (from, environmentId, registrationId) => registrations.claim(from, environmentId, registrationId),
  };
  const router = new CodexRendezvousRouter(limits, logger, () => 1);
  const registry = new CodexRegistry({ credentials: () => credentials, bindings, signer, router, nativeExecutorLive: () => false, limits, logger, events: NO_RELAY_EVENTS, tls: false, fleet });
  registrations.handOver = (request) => registry.handOver(request);
  const server = http.createServer((req, res) => {
    const match = CODEX_REGISTRY_PATH_PATTERN.exec(new URL(req.url ?? '/', 'http://x').pathname);
    void registry.handle(req, res, match![1]!, match![2] as CodexRegistryAction);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const made = { registry, bindings, server, router, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  instances.push(made);
  return made;
}

/** `POST …/register` at `at` for a new executor key: the grant of the rendezvous URL it answers, and the key. */
async function register(at: Instance, environmentId: string, token = EXECUTOR, key = generateHybridKeyPair().publicKey) {
  const response = await fetch(`${at.base}/cloud/environment/${environmentId}/register`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ security_profile: CODEX_SECURITY_PROFILE, executor_public_key: encodeRegistryPublicKey(key) }),
  });
  const body = (await response.json()) as { url: string; executor_registration_id: string };
  expect(response.status, JSON.stringify(body)).toBe(200);
  const verified = signer.verifyQuery(new URL(body.url).searchParams);
  if (!verified.ok) throw new Error(verified.rejection.reason);
  return { grant: verified.grant, key, url: body.url };
}

let a: Instance;
let b: Instance;
let c: Instance;
beforeAll(async () => {
  [a, b, c] = await Promise.all([instance('relay-a'), instance('relay-b'), instance('relay-c')]);
});
afterAll(async () => {
  for (const made of instances) {
    made.router.stop();
    await new Promise((resolve) => made.server.close(resolve));
  }
});

describe('a codex executor socket on another fleet instance than its registration', () => {
  it('the registration id names its minting process; the socket at another instance claims it once, with its key, and it is then that instance’s', async () => {
    const { grant, key } = await register(a, 'ho-moved');
    expect(registrationMinter(grant.registrationId)).toEqual({ instance: 'relay-a', boot: 'bootrelay-a' });
    const atB = await b.registry.executorRegistration(grant);
    expect(atB.ok).toBe(true);
    if (!atB.ok) return;
    expect(atB.registration).toMatchObject({ environmentId: 'ho-moved', registrationId: grant.registrationId, credentialId: grant.credentialId, fingerprint: hybridFingerprint(key) });
    expect(encodeRegistryPublicKey(atB.registration.executorKey)).toEqual(encodeRegistryPublicKey(key));
    // B holds it now: codex reconnecting there with the same URL is let in, and B's registry knows it.
    expect(b.registry.registration('ho-moved')?.registrationId).toBe(grant.registrationId);
    expect((await b.registry.executorRegistration(grant)).ok).toBe(true);
    // A handed it over and forgot it: the URL replayed at A or at C is refused (404: codex would register again).
    expect(a.registry.registration('ho-moved')).toBeUndefined();
    expect(await a.registry.executorRegistration(grant)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
    expect(await c.registry.executorRegistration(grant)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
    expect(c.registry.registration('ho-moved')).toBeUndefined();
  });

  it('a registration whose socket opened at its minter is not handed over: the same URL at another instance is refused', async () => {
    const { grant } = await register(a, 'ho-home');
    expect((await a.registry.executorRegistration(grant)).ok).toBe(true);
    expect(await b.registry.executorRegistration(grant)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
    expect(a.registry.registration('ho-home')?.registrationId).toBe(grant.registrationId);
    expect(b.registry.registration('ho-home')).toBeUndefined();
  });

  it('two instances claiming the same registration at once: exactly one gets it', async () => {
    const { grant } = await register(a, 'ho-race');
    const [atB, atC] = await Promise.all([b.registry.executorRegistration(grant), c.registry.executorRegistration(grant)]);
    expect([atB.ok, atC.ok].sort()).toEqual([false, true]);
  });

  it('only the latest registration of the environment at its minter is handed over', async () => {
    const key = generateHybridKeyPair().publicKey;
    const first = await register(a, 'ho-latest', EXECUTOR, key);
    const second = await register(a, 'ho-latest', EXECUTOR, key);
    expect(second.grant.registrationId).not.toBe(first.grant.registrationId);
    expect(await b.registry.executorRegistration(first.grant)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
    expect((await b.registry.executorRegistration(second.grant)).ok).toBe(true);
  });

  it('fails closed: a minter that restarted (another boot), is unreachable, or NATS down: refused with 404; nothing is handed over', async () => {
    const { grant } = await register(a, 'ho-closed');
    const restarted: RendezvousGrant = { ...grant, registrationId: grant.registrationId.replace('.bootrelay-a.', '.bootnew.') };
    expect(await b.registry.executorRegistration(restarted)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
    nats.down = true;
    try {
      expect(await b.registry.executorRegistration(grant)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
    } finally {
      nats.down = false;
    }
    // Still A's to hand over (nothing was taken): B gets it now.
    expect((await b.registry.executorRegistration(grant)).ok).toBe(true);
  });

  it('a claimed registration is checked as a new one: another token than the registration’s, or a key the environment is not bound to, is refused', async () => {
    const { grant } = await register(a, 'ho-token');
    const otherCredential = (credentials.check(`Bearer ${OTHER_EXECUTOR}`, 'executor', 'ho-token') as { credential: { id: string } }).credential.id;
    expect(await b.registry.executorRegistration({ ...grant, credentialId: otherCredential })).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });

    const bound = await register(a, 'ho-bound');
    // Rebound meanwhile (an operator's unbind, another executor's first registration): B's binding check refuses it.
    await b.bindings.unbind('ho-bound');
    await b.bindings.bind('ho-bound', 'hyb1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa');
    expect(await b.registry.executorRegistration(bound.grant)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
  });

  it('an expired registration at its minter is not handed over, and an expired URL is refused by every instance’s signature check', async () => {
    const short = await instance('relay-short', { ...DEFAULT_RELAY_LIMITS, codexRegistrationTtlMs: 0 });
    const { grant, url } = await register(short, 'ho-expired');
    expect(await b.registry.executorRegistration(grant)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
    expect(signer.verifyQuery(new URL(url).searchParams, grant.expiresAt + 1)).toEqual({ ok: false, rejection: { status: 403, reason: 'expired' } });
  });

  it('a full instance (maxExecutors registrations) refuses before claiming: the registration stays its minter’s', async () => {
    const full = await instance('relay-full', { ...DEFAULT_RELAY_LIMITS, maxExecutors: 1 });
    await register(full, 'ho-full-own');
    const { grant } = await register(a, 'ho-full');
    expect(await full.registry.executorRegistration(grant)).toEqual({ ok: false, rejection: { status: 503, reason: 'route_unavailable' } });
    expect(a.registry.registration('ho-full')?.registrationId).toBe(grant.registrationId);
    expect((await b.registry.executorRegistration(grant)).ok).toBe(true);
  });

  it('a single relay (no fleet) keeps today’s rule: the socket opens only where it registered', async () => {
    const single = new CodexRegistry({
      credentials: () => credentials,
      bindings: new MemoryBindings(100),
      signer,
      router: new CodexRendezvousRouter(DEFAULT_RELAY_LIMITS, logger, () => 1),
      nativeExecutorLive: () => false,
      limits: DEFAULT_RELAY_LIMITS,
      logger,
      events: NO_RELAY_EVENTS,
      tls: false,
    });
    const { grant } = await register(a, 'ho-single');
    expect(await single.executorRegistration(grant)).toEqual({ ok: false, rejection: { status: 404, reason: 'unknown_route' } });
    expect(nats.serves(FleetSubject.registrationsOf('relay-a', 'bootrelay-a'))).toBe(true);
    expect(errors).toEqual([]);
  });
});
