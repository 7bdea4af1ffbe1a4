/**
 * The three registry calls against a scripted registry on a real loopback HTTP server: each POSTs
 * its JSON to its path with the bearer token (and `/validate` the stream header), and each answer
 * is checked as before — a refusal named with the registry's code, a non-JSON or malformed answer
 * refused, a register answer that echoes the bearer refused, `/validate` true only for
 * `{"valid":true}`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodexRegistryRefusedError, requestCodexRegister, requestCodexValidate } from '../../../../src/codex-registry/registry-client.js';
import { CODEX_NOISE_STREAM_ID_HEADER, CODEX_SECURITY_PROFILE } from '../../../../src/codex-registry/registry-endpoints.js';
import { generateHybridKeyPair } from '../../../../src/noise-hybrid/hybrid-keys.js';

const ENV = 'env-registry';
const TOKEN = 'executor-token-0123456789abcdef';

interface Seen {
  path: string;
  authorization: string | undefined;
  streamId: string | undefined;
  body: any;
}

let server: http.Server;
let relay = '';
const seen: Seen[] = [];
/** The scripted answer to the next call: status and raw body text. */
let answer: { status: number; text: string } = { status: 200, text: '{}' };

beforeAll(async () => {
  server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      seen.push({
        path: request.url ?? '',
        authorization: request.headers.authorization,
        streamId: request.headers[CODEX_NOISE_STREAM_ID_HEADER] as string | undefined,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      });
      response.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  relay = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const key = generateHybridKeyPair().publicKey;
const registered = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ environment_id: ENV, url: 'ws://127.0.0.1:1/cloud/rendezvous?sig=x', security_profile: CODEX_SECURITY_PROFILE, executor_registration_id: 'reg-1', ...extra });

describe('registry client', () => {
  it('register POSTs the profile and key with the bearer to its path and returns the checked answer', async () => {
    seen.length = 0;
    answer = { status: 200, text: registered() };
    await expect(requestCodexRegister({ relay, environmentId: ENV, token: TOKEN, executorKey: key })).resolves.toEqual({
      url: 'ws://127.0.0.1:1/cloud/rendezvous?sig=x',
      registrationId: 'reg-1',
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ path: `/cloud/environment/${ENV}/register`, authorization: `Bearer ${TOKEN}`, streamId: undefined });
    expect(seen[0]!.body.security_profile).toBe(CODEX_SECURITY_PROFILE);
    expect(seen[0]!.body.executor_public_key).toBeDefined();
  });

  it('register refusals: the registry code named, non-JSON, another environment, an echoed bearer', async () => {
    const register = () => requestCodexRegister({ relay, environmentId: ENV, token: TOKEN, executorKey: key });
    answer = { status: 401, text: JSON.stringify({ error: { code: 'unauthorized', message: 'bad token' } }) };
    await expect(register()).rejects.toThrow(`the relay refused to register environment ${ENV}: HTTP 401 unauthorized: bad token`);
    answer = { status: 502, text: '<html>bad gateway</html>' };
    const nonJson = await register().catch((error: unknown) => error);
    expect(nonJson).toBeInstanceOf(CodexRegistryRefusedError);
    expect(nonJson).toMatchObject({ status: 502, code: 'malformed_answer', permanent: false });
    answer = { status: 200, text: registered({ environment_id: 'other' }) };
    await expect(register()).rejects.toThrow("the relay's register answer is for another environment");
    answer = { status: 200, text: registered({ executor_registration_id: `reg-${TOKEN}` }) };
    await expect(register()).rejects.toMatchObject({ code: 'malformed_answer', permanent: true, message: "the relay's register answer echoes the bearer token" });
  });

  it('validate sends the stream header and is true only for {"valid":true}', async () => {
    const validate = () =>
      requestCodexValidate({ relay, environmentId: ENV, token: TOKEN, streamId: 'stream-7', registrationId: 'reg-1', harnessKey: key, authorization: 'auth' });
    seen.length = 0;
    answer = { status: 200, text: '{"valid":true}' };
    await expect(validate()).resolves.toBe(true);
    expect(seen[0]).toMatchObject({ path: `/cloud/environment/${ENV}/validate`, authorization: `Bearer ${TOKEN}`, streamId: 'stream-7' });
    expect(seen[0]!.body).toMatchObject({ executor_registration_id: 'reg-1', harness_key_authorization: 'auth' });
    for (const text of ['{"valid":false}', '{"valid":"yes"}', 'not json']) {
      answer = { status: 200, text };
      await expect(validate()).resolves.toBe(false);
    }
    answer = { status: 403, text: '{"valid":true}' };
    await expect(validate()).resolves.toBe(false);
  });
});
