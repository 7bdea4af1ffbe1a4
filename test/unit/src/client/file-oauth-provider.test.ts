/** The CLI's file-backed OAuthClientProvider: mode 0600 files, atomic rewrites, and no login started without a way to show the URL. */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileOAuthProvider } from '../../../../src/client/file-oauth-provider.js';

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-oauth-file-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const base = { serverUrl: 'https://mcp.internal/mcp', redirectUrl: 'http://127.0.0.1:8914/callback' };

describe('FileOAuthProvider', () => {
  it('creates its directory (0700) and file (0600), tightens a pre-existing loose file, and keeps what the SDK saves unchanged', async () => {
    const file = path.join(dir, 'nested', 'state.json');
    const provider = new FileOAuthProvider({ ...base, file, onAuthorizationUrl: () => undefined });
    expect(provider.tokens()).toBeUndefined();
    const tokens = { access_token: 'a', token_type: 'Bearer', refresh_token: 'r', issuer: 'https://as.internal/' } as const;
    await provider.saveTokens(tokens);
    expect((await stat(path.dirname(file))).mode & 0o777).toBe(0o700);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(new FileOAuthProvider({ ...base, file }).tokens()).toEqual(tokens);

    const loose = path.join(dir, 'loose.json');
    await writeFile(loose, JSON.stringify({ version: 1 }), { mode: 0o644 });
    await new FileOAuthProvider({ ...base, file: loose }).saveClientInformation({ client_id: 'c', redirect_uris: [base.redirectUrl] });
    expect((await stat(loose)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(loose, 'utf8')).clientInformation).toEqual({ client_id: 'c', redirect_uris: [base.redirectUrl] });
  });

  it('keeps the PKCE verifier and state of a pending login, and forgets them once tokens arrive', async () => {
    const file = path.join(dir, 'pending.json');
    const shown: URL[] = [];
    const provider = new FileOAuthProvider({ ...base, file, onAuthorizationUrl: (url) => void shown.push(url) });
    const state = await provider.state();
    await provider.saveCodeVerifier('verifier-1');
    await provider.redirectToAuthorization(new URL('https://as.internal/authorize?x=1'));
    expect(shown.map(String)).toEqual(['https://as.internal/authorize?x=1']);
    const reloaded = new FileOAuthProvider({ ...base, file });
    expect(reloaded.pendingState).toBe(state);
    expect(reloaded.codeVerifier()).toBe('verifier-1');
    await reloaded.saveTokens({ access_token: 'a', token_type: 'Bearer' });
    expect(reloaded.pendingState).toBeUndefined();
    expect(() => reloaded.codeVerifier()).toThrow(/no login in progress/);
  });

  it('without onAuthorizationUrl it never starts a login and leaves a pending one alone', async () => {
    const file = path.join(dir, 'readonly.json');
    const starter = new FileOAuthProvider({ ...base, file, onAuthorizationUrl: () => undefined });
    const state = await starter.state();
    await starter.saveCodeVerifier('kept');
    const tools = new FileOAuthProvider({ ...base, file });
    await tools.state();
    await tools.saveCodeVerifier('clobber');
    await expect(tools.redirectToAuthorization(new URL('https://as.internal/authorize'))).rejects.toThrow(/needs a login/);
    const after = new FileOAuthProvider({ ...base, file });
    expect(after.pendingState).toBe(state);
    expect(after.codeVerifier()).toBe('kept');
  });

  it('refuses a file it cannot parse', async () => {
    const file = path.join(dir, 'garbage.json');
    await writeFile(file, 'not json');
    expect(() => new FileOAuthProvider({ ...base, file })).toThrow(/cannot parse OAuth state/);
  });
});
