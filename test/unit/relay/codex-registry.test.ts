import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import WebSocket from 'ws';
import { RelayServer } from '../../../relay/relay-server.js';
import { RelayCredentials } from '../../../relay/relay-credentials.js';
import { createLogger } from '../../../src/logging/logger.js';
import { generateHybridKeyPair } from '../../../src/noise-hybrid/hybrid-keys.js';
import { encodeRegistryPublicKey } from '../../../src/noise-hybrid/registry-public-key.js';
import { CODEX_SECURITY_PROFILE, MAX_CODEX_REGISTRY_BODY_BYTES } from '../../../src/codex-registry/registry-endpoints.js';
import { RelayRefusedError } from '../../../src/relay-link/relay-socket.js';
import { connectProvenExecutor } from '../../support/proven-executor.js';

/**
 * The relay's codex registry (`relay/codex-registry.ts`) on a real loopback listener: every bad
 * input a clear 4xx with `{"error":{"code","message"}}`, the environment bound to the first
 * executor key, one namespace with execrelay agents, and what `register` and `connect` answer.
 */

const EXECUTOR = 'registry-executor-token-012345';
const CLIENT = 'registry-client-token-01234567';
const TOKENS = `${EXECUTOR} executor reg-*\n${CLIENT} client reg-*\n`;

let relay: RelayServer;
let base: string;
let wsBase: string;
const executorSockets: WebSocket[] = [];

beforeAll(async () => {
  relay = new RelayServer({ credentials: RelayCredentials.parse(TOKENS, 'tokens').credentials, logger: createLogger('test', 'silent') });
  wsBase = await relay.listen('127.0.0.1', 0);
  base = wsBase.replace('ws:', 'http:');
});
afterAll(async () => {
  for (const socket of executorSockets) socket.terminate();
  await relay.close();
});

async function post(path: string, body: unknown, token?: string, method = 'POST'): Promise<{ status: number; body: any; text: string }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(method === 'POST' ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: response.status, body: parsed, text };
}

const registerBody = (key = generateHybridKeyPair()) => ({ security_profile: CODEX_SECURITY_PROFILE, executor_public_key: encodeRegistryPublicKey(key.publicKey) });

/** Registers and connects the executor's rendezvous socket (so that the environment is served). */
async function registerLive(environmentId: string, key = generateHybridKeyPair()) {
  const answer = await post(`/cloud/environment/${environmentId}/register`, registerBody(key), EXECUTOR);
  expect(answer.status, answer.text).toBe(200);
  const socket = new WebSocket(answer.body.url);
  executorSockets.push(socket);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return { answer: answer.body, socket, key };
}

describe('register', () => {
  it('answers what codex 0.169.0 requires, with a signed executor rendezvous URL on this listener, never echoing the bearer', async () => {
    const answer = await post('/cloud/environment/reg-a/register', registerBody(), EXECUTOR);
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ environment_id: 'reg-a', url: expect.any(String), security_profile: 'noise_hybrid_ik_v1', executor_registration_id: expect.stringMatching(/^reg-[0-9a-f-]{36}$/) });
    const url = new URL(answer.body.url);
    expect(`${url.protocol}//${url.host}`).toBe(wsBase);
    expect(url.pathname).toBe('/cloud/rendezvous');
    expect(Object.fromEntries(url.searchParams)).toMatchObject({ v: '1', role: 'executor', environment_id: 'reg-a', executor_registration_id: answer.body.executor_registration_id });
    expect(answer.text).not.toContain(EXECUTOR);
  });

  it('binds the environment to the first key: the same key registers again (new registration id), another key is refused', async () => {
    const key = generateHybridKeyPair();
    const first = await post('/cloud/environment/reg-bound/register', registerBody(key), EXECUTOR);
    const again = await post('/cloud/environment/reg-bound/register', registerBody(key), EXECUTOR);
    expect([first.status, again.status]).toEqual([200, 200]);
    expect(again.body.executor_registration_id).not.toBe(first.body.executor_registration_id);
    const other = await post('/cloud/environment/reg-bound/register', registerBody(), EXECUTOR);
    expect(other).toMatchObject({ status: 403, body: { error: { code: 'environment_key_mismatch', message: expect.stringContaining('execrelay relay unbind') } } });
  });

  it('refuses bad input with a clear 4xx and never crashes', async () => {
    const path = '/cloud/environment/reg-bad/register';
    expect(await post(path, registerBody())).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    expect(await post(path, registerBody(), 'not-a-known-token-0123456789')).toMatchObject({ status: 401 });
    expect(await post(path, registerBody(), CLIENT)).toMatchObject({ status: 403, body: { error: { code: 'forbidden_role' } } });
    expect(await post('/cloud/environment/other-env/register', registerBody(), EXECUTOR)).toMatchObject({ status: 403, body: { error: { code: 'environment_not_in_scope' } } });
    expect(await post('/cloud/environment/bad%2Fid/register', registerBody(), EXECUTOR)).toMatchObject({ status: 400, body: { error: { code: 'invalid_environment_id' } } });
    expect(await post('/cloud/environment/%E0%A4%A/register', registerBody(), EXECUTOR)).toMatchObject({ status: 400, body: { error: { code: 'invalid_environment_id' } } });
    expect(await post(path, undefined, EXECUTOR, 'GET')).toMatchObject({ status: 405, body: { error: { code: 'method_not_allowed' } } });
    expect(await post(path, '{not json', EXECUTOR)).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', message: 'the body is not JSON' } } });
    expect(await post(path, [], EXECUTOR)).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect(await post(path, { ...registerBody(), security_profile: 'legacy' }, EXECUTOR)).toMatchObject({ status: 400, body: { error: { code: 'unsupported_security_profile' } } });
    const key = encodeRegistryPublicKey(generateHybridKeyPair().publicKey);
    const lowOrder = { ...key, x25519_public_key: Buffer.alloc(32).toString('base64') };
    expect(await post(path, { security_profile: CODEX_SECURITY_PROFILE, executor_public_key: lowOrder }, EXECUTOR)).toMatchObject({
      status: 400,
      body: { error: { code: 'invalid_request', message: 'executor_public_key: x25519_public_key is a low-order point' } },
    });
    expect(await post(path, { security_profile: CODEX_SECURITY_PROFILE, executor_public_key: { ...key, suite: 'other' } }, EXECUTOR)).toMatchObject({ status: 400 });
    expect(await post(path, { ...registerBody(), padding: 'x'.repeat(MAX_CODEX_REGISTRY_BODY_BYTES) }, EXECUTOR)).toMatchObject({ status: 413, body: { error: { code: 'body_too_large' } } });
    expect(relay.isReady).toBe(true);
  });

  it('refuses a body larger than the limit sent without a length (chunked) too', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const request = http.request(`${base}/cloud/environment/reg-chunked/register`, { method: 'POST', headers: { authorization: `Bearer ${EXECUTOR}`, 'transfer-encoding': 'chunked' } }, (response) => {
        response.resume();
        resolve(response.statusCode ?? 0);
      });
      request.on('error', reject);
      for (let i = 0; i < 20; i++) request.write('x'.repeat(1024));
      request.end();
    });
    expect(status).toBe(413);
  });

  it('shares one namespace with execrelay agents: an id an agent holds is not registrable, nor the other way round', async () => {
    const agent = await connectProvenExecutor(wsBase, 'reg-native', EXECUTOR);
    agent.resume();
    executorSockets.push(agent);
    expect(await post('/cloud/environment/reg-native/register', registerBody(), EXECUTOR)).toMatchObject({ status: 409, body: { error: { code: 'environment_in_use' } } });
    await registerLive('reg-codex');
    const refused = await connectProvenExecutor(wsBase, 'reg-codex', EXECUTOR).then(
      () => 'accepted',
      (error: unknown) => (error instanceof RelayRefusedError ? `${error.status} ${error.reason}` : String(error)),
    );
    expect(refused).toBe('409 environment_in_use');
  });
});

describe('connect and validate', () => {
  it('connect answers the registered key and registration, a harness URL and an authorization; validate accepts it once, for that key only', async () => {
    const { answer: registered, key: executorKey } = await registerLive('reg-connect');
    const harness = generateHybridKeyPair();
    const connect = await post('/cloud/environment/reg-connect/connect', { harness_public_key: encodeRegistryPublicKey(harness.publicKey) }, CLIENT);
    expect(connect.status, connect.text).toBe(200);
    expect(connect.body).toEqual({
      environment_id: 'reg-connect',
      url: expect.stringContaining('role=harness'),
      security_profile: 'noise_hybrid_ik_v1',
      executor_registration_id: registered.executor_registration_id,
      executor_public_key: encodeRegistryPublicKey(executorKey.publicKey),
      harness_key_authorization: expect.stringMatching(/^hka1\./),
    });
    const validate = (body: Record<string, unknown>, token = EXECUTOR) =>
      post(
        '/cloud/environment/reg-connect/validate',
        { executor_registration_id: registered.executor_registration_id, harness_public_key: encodeRegistryPublicKey(harness.publicKey), harness_key_authorization: connect.body.harness_key_authorization, ...body },
        token,
      );
    expect(await validate({ harness_public_key: encodeRegistryPublicKey(generateHybridKeyPair().publicKey) })).toMatchObject({ status: 200, body: { valid: false } });
    expect(await validate({ executor_registration_id: 'reg-other' })).toMatchObject({ status: 200, body: { valid: false } });
    expect(await validate({ harness_key_authorization: `${connect.body.harness_key_authorization}x` })).toMatchObject({ status: 200, body: { valid: false } });
    expect(await validate({}, CLIENT)).toMatchObject({ status: 403, body: { error: { code: 'forbidden_role' } } });
    expect(await validate({})).toMatchObject({ status: 200, body: { valid: true } });
    expect(await validate({})).toMatchObject({ status: 200, body: { valid: false } });
  });

  it('an authorization for one environment is not valid for another', async () => {
    const harness = generateHybridKeyPair();
    const { answer: one } = await registerLive('reg-one');
    const { answer: two } = await registerLive('reg-two');
    const connect = await post('/cloud/environment/reg-one/connect', { harness_public_key: encodeRegistryPublicKey(harness.publicKey) }, CLIENT);
    const validate = await post(
      '/cloud/environment/reg-two/validate',
      { executor_registration_id: two.executor_registration_id, harness_public_key: encodeRegistryPublicKey(harness.publicKey), harness_key_authorization: connect.body.harness_key_authorization },
      EXECUTOR,
    );
    expect(validate).toMatchObject({ status: 200, body: { valid: false } });
    expect(one.executor_registration_id).not.toBe(two.executor_registration_id);
  });

  it('connect refuses an environment without a connected codex executor, a bad key and an executor token', async () => {
    const harness = { harness_public_key: encodeRegistryPublicKey(generateHybridKeyPair().publicKey) };
    expect(await post('/cloud/environment/reg-nobody/connect', harness, CLIENT)).toMatchObject({ status: 404, body: { error: { code: 'executor_unavailable' } } });
    expect(await post('/cloud/environment/reg-nobody/connect', { harness_public_key: 'x' }, CLIENT)).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    expect(await post('/cloud/environment/reg-nobody/connect', harness, EXECUTOR)).toMatchObject({ status: 403, body: { error: { code: 'forbidden_role' } } });
  });
});

describe('audit log', () => {
  it('records codex registrations (with the executor key fingerprint) and refusals (with the reason), never a token', async () => {
    const { AuditLog } = await import('../../../src/audit/audit-log.js');
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const os = await import('node:os');
    const path = await import('node:path');
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'execrelay-codex-audit-')), 'audit.log');
    const auditLog = await AuditLog.open({ file });
    const audited = new RelayServer({ credentials: RelayCredentials.parse(TOKENS, 'tokens').credentials, logger: createLogger('test', 'silent'), auditLog });
    const url = (await audited.listen('127.0.0.1', 0)).replace('ws:', 'http:');
    try {
      const key = generateHybridKeyPair();
      const call = (path: string, body: unknown, token: string) =>
        fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) }).then((r) => r.json());
      const registered = (await call('/cloud/environment/reg-audit/register', registerBody(key), EXECUTOR)) as { executor_registration_id: string };
      await call('/cloud/environment/reg-audit/connect', { harness_public_key: encodeRegistryPublicKey(key.publicKey) }, EXECUTOR);
      await call(
        '/cloud/environment/reg-audit/validate',
        { executor_registration_id: registered.executor_registration_id, harness_public_key: encodeRegistryPublicKey(key.publicKey), harness_key_authorization: 'hka1.x.y' },
        EXECUTOR,
      );
    } finally {
      await audited.close();
      await auditLog.close();
    }
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(EXECUTOR);
    const lines = text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines).toEqual([
      expect.objectContaining({ event: 'codex.registered', environmentId: 'reg-audit', tokenLine: 1, remoteAddress: '127.0.0.1', executorKey: expect.stringMatching(/^hyb1:/) }),
      expect.objectContaining({ event: 'codex.refused', action: 'connect', environmentId: 'reg-audit', reason: 'forbidden_role', authFailure: true }),
      expect.objectContaining({ event: 'codex.refused', action: 'validate', environmentId: 'reg-audit', tokenLine: 1, reason: 'bad_signature', authFailure: false }),
    ]);
  });
});
