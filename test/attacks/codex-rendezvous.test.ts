import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import WebSocket from 'ws';
import { requestCodexConnect } from '../../src/codex-registry/registry-client.js';
import { generateHybridKeyPair } from '../../src/noise-hybrid/hybrid-keys.js';
import { ensureCodexInstalled } from '../support/codex-exec-server.js';
import { startCodexRendezvous, type CodexRendezvousFixture } from '../support/codex-rendezvous-fixture.js';
import { tryCodexHandshake } from '../support/codex-harness-handshake.js';
import { runCli } from '../support/cli.js';

/**
 * Refusals at the codex rendezvous, against the real codex exec-server 0.169.0: tokens of another
 * environment or role are refused by the registry with a clear reason; an authorization minted for
 * another key, a replayed one or an expired one is refused by the executor after the relay answers
 * `{"valid":false}`; a token whose handshakes keep failing is cooled down at the relay before the
 * executor's own failure pause (8 failures) could hit everyone — and the executor keeps serving
 * other clients throughout.
 */

const ENV = 'codex-attacks';
const EXECUTOR_TOKEN = 'codex-executor-token-0123456789';
const VICTIM_TOKEN = 'codex-victim-token-0123456789ab';
const ATTACKER_TOKEN = 'codex-attacker-token-0123456789';
const OTHER_ENV_TOKEN = 'codex-other-env-token-012345678';
const TOKENS = [`${EXECUTOR_TOKEN} executor codex-*`, `${VICTIM_TOKEN} client codex-*`, `${ATTACKER_TOKEN} client codex-*`, `${OTHER_ENV_TOKEN} client other-*`].join('\n');
/** Authorizations expire this fast here, so that one can be let expire. */
const AUTHORIZATION_TTL_MS = 3000;

const failedValidations = (fixture: CodexRendezvousFixture) => (fixture.executor.log().match(/authorization_failed/g) ?? []).length;

describe('codex rendezvous refusals', () => {
  let fixture: CodexRendezvousFixture;
  let keyFile: string;

  const victimRuns = async () => {
    const victim = await runCli(['exec', '--relay', fixture.url, '--env', ENV, '--token-file', fixture.tokenFile('victim.token', VICTIM_TOKEN), '--key', keyFile, '--accept-relay-key', '--', 'echo', 'still served'], {
      timeoutMs: 60_000,
    });
    expect(victim.stdout, victim.stderr).toBe('still served\n');
    expect(victim.code).toBe(0);
  };
  const connect = (token: string, key = generateHybridKeyPair()) => requestCodexConnect({ relay: fixture.url, environmentId: ENV, token, harnessKey: key.publicKey });

  beforeAll(async () => {
    await ensureCodexInstalled();
    fixture = await startCodexRendezvous({ tokens: TOKENS, environmentId: ENV, executorToken: EXECUTOR_TOKEN, limits: { codexAuthorizationTtlMs: AUTHORIZATION_TTL_MS } });
    keyFile = path.join(fixture.dir, 'client-hybrid.key');
    expect((await runCli(['keygen', '--hybrid', '--out', keyFile])).code).toBe(0);
  }, 600_000);
  afterAll(async () => {
    await fixture?.stop();
  });

  it('a client token for another environment is refused by the registry, naming the reason', async () => {
    const result = await runCli(['exec', '--relay', fixture.url, '--env', ENV, '--token-file', fixture.tokenFile('other.token', OTHER_ENV_TOKEN), '--key', keyFile, '--accept-relay-key', '--', 'true']);
    expect(result.code).toBe(255);
    expect(result.stderr).toContain(`the relay refused to connect to environment ${ENV}: HTTP 403 environment_not_in_scope: this environment id is outside the token's scope`);
    await victimRuns();
  });

  it('an executor token used as a client is refused (forbidden_role)', async () => {
    const result = await runCli(['exec', '--relay', fixture.url, '--env', ENV, '--token-file', fixture.tokenFile('executor.token', EXECUTOR_TOKEN), '--key', keyFile, '--accept-relay-key', '--', 'true']);
    expect(result.code).toBe(255);
    expect(result.stderr).toContain('HTTP 403 forbidden_role: the relay accepts this token only for the other role');
    await victimRuns();
  });

  it('an authorization minted for another key, replayed, or expired is refused by the executor; past the token budget the relay refuses first', async () => {
    const before = failedValidations(fixture);
    // Minted for key A, presented in a handshake that proves key B.
    const keyA = generateHybridKeyPair();
    const answer = await connect(ATTACKER_TOKEN, keyA);
    expect(await tryCodexHandshake({ environmentId: ENV, answer, harnessKey: generateHybridKeyPair() })).toEqual({ outcome: 'reset', reason: 'noise_relay_protocol_error' });
    // Used once by its own key: accepted; the same authorization again: refused.
    const fresh = await connect(ATTACKER_TOKEN, keyA);
    expect(await tryCodexHandshake({ environmentId: ENV, answer: fresh, harnessKey: keyA })).toEqual({ outcome: 'accepted' });
    expect(await tryCodexHandshake({ environmentId: ENV, answer: fresh, harnessKey: keyA })).toEqual({ outcome: 'reset', reason: 'noise_relay_protocol_error' });
    // Left to expire.
    const stale = await connect(ATTACKER_TOKEN, keyA);
    await new Promise((resolve) => setTimeout(resolve, AUTHORIZATION_TTL_MS + 500));
    expect(await tryCodexHandshake({ environmentId: ENV, answer: stale, harnessKey: keyA })).toEqual({ outcome: 'reset', reason: 'noise_relay_protocol_error' });
    expect(failedValidations(fixture) - before).toBe(3);
    // Three failures: the attacker's token is cooled down at the relay, the executor sees nothing more.
    const next = await connect(ATTACKER_TOKEN, keyA);
    expect(await tryCodexHandshake({ environmentId: ENV, answer: next, harnessKey: generateHybridKeyPair() })).toEqual({ outcome: 'reset', reason: 'too_many_failed_handshakes' });
    expect(failedValidations(fixture) - before).toBe(3);
    expect(fixture.executor.log()).not.toMatch(/pausing Noise relay handshakes/);
    await victimRuns();
  }, 60_000);

  it('a rendezvous URL with a changed role or signature is refused with its reason', async () => {
    const answer = await connect(VICTIM_TOKEN);
    const refusal = async (url: string) =>
      new Promise<string>((resolve) => {
        const socket = new WebSocket(url);
        socket.once('open', () => {
          socket.close();
          resolve('accepted');
        });
        socket.once('unexpected-response', (_request, response) => {
          resolve(`${response.statusCode} ${String(response.headers['x-codex-rendezvous-rejection-reason'])}`);
          response.resume();
          socket.terminate();
        });
        socket.once('error', () => resolve('error'));
      });
    const asExecutor = answer.url.replace('role=harness', 'role=executor');
    expect(await refusal(asExecutor)).toBe('403 invalid_signature');
    const url = new URL(answer.url);
    url.searchParams.set('signature', 'A'.repeat(43));
    expect(await refusal(url.toString())).toBe('403 invalid_signature');
    url.searchParams.delete('signature');
    expect(await refusal(url.toString())).toBe('400 missing_signature');
    expect(await refusal(`${answer.url}&extra=1`)).toBe('400 extra_query_param');
    expect(await refusal(answer.url)).toBe('accepted');
    await victimRuns();
  });
});
