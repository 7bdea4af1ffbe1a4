import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BindingsFile, defaultBindingsFile } from '../../../relay/bindings-file.js';
import { MemoryBindings } from '../../../relay/environment-bindings.js';
import { PinnedEnvironmentKeys } from '../../../relay/pinned-environment-keys.js';
import { generateIdentity, parseKnownEnvironments } from '../../../src/noise/identity.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
function tempFile(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-bindings-test-'));
  dirs.push(dir);
  return path.join(dir, 'state', 'execrelay', 'environment-bindings');
}
const keys = async (n: number) => Promise.all(Array.from({ length: n }, async () => (await generateIdentity()).publicIdentity));

describe('BindingsFile: a single relay binds each environment to its first key', () => {
  it('first key binds, the same key matches, another key is refused; written 0600 in a 0700 directory, in the known-environments format', async () => {
    const file = tempFile();
    const [a, b] = await keys(2);
    const bindings = new BindingsFile(file, 100);
    expect(await bindings.bind('env-1', a!)).toBe('bound');
    expect(await bindings.bind('env-1', a!)).toBe('matches');
    expect(await bindings.bind('env-1', b!)).toBe('mismatch');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    expect(parseKnownEnvironments(readFileSync(file, 'utf8'))).toEqual(new Map([['env-1', a]]));
    // A new process (a relay restart) reads the same bindings.
    expect(await new BindingsFile(file, 100).bind('env-1', b!)).toBe('mismatch');
    // No temporary or lock file is left behind.
    expect(readdir(path.dirname(file))).toEqual(['environment-bindings']);
  });

  it('concurrent binds in one process are serialized: every environment is kept, and one key wins a race for the same environment', async () => {
    const file = tempFile();
    const bindings = new BindingsFile(file, 1000);
    const identities = await keys(20);
    const results = await Promise.all(identities.map((key, i) => bindings.bind(`env-${i}`, key)));
    expect(results.every((r) => r === 'bound')).toBe(true);
    const race = await Promise.all(identities.map((key) => bindings.bind('contested', key)));
    expect(race.filter((r) => r === 'bound')).toHaveLength(1);
    expect(race.filter((r) => r === 'mismatch')).toHaveLength(19);
    const written = parseKnownEnvironments(readFileSync(file, 'utf8'));
    expect(written.size).toBe(21);
    expect(written.get('contested')).toBe(identities[race.indexOf('bound')]);
  });

  it('two stores on the same file (the relay and `relay unbind` in another process) do not lose each other\'s changes', async () => {
    const file = tempFile();
    const relay = new BindingsFile(file, 1000);
    const operator = new BindingsFile(file, 1000);
    const identities = await keys(10);
    await Promise.all(identities.map((key, i) => (i % 2 === 0 ? relay : operator).bind(`env-${i}`, key)));
    expect(parseKnownEnvironments(readFileSync(file, 'utf8')).size).toBe(10);
    // An unbind by the other store takes effect on the relay's next registration, without a restart.
    const [fresh] = await keys(1);
    expect(await relay.bind('env-0', fresh!)).toBe('mismatch');
    expect(await operator.unbind('env-0')).toBe(identities[0]);
    expect(await operator.unbind('env-0')).toBeNull();
    expect(await relay.bind('env-0', fresh!)).toBe('bound');
    expect((await operator.list()).get('env-0')).toBe(fresh);
  });

  it('is bounded: past maxBindings a new environment is refused (full), bound ones still match, and an unbind makes room', async () => {
    const file = tempFile();
    const bindings = new BindingsFile(file, 3);
    const identities = await keys(4);
    for (let i = 0; i < 3; i++) expect(await bindings.bind(`env-${i}`, identities[i]!)).toBe('bound');
    expect(await bindings.bind('env-3', identities[3]!)).toBe('full');
    expect(await bindings.bind('env-1', identities[1]!)).toBe('matches');
    expect(parseKnownEnvironments(readFileSync(file, 'utf8')).size).toBe(3);
    await bindings.unbind('env-0');
    expect(await bindings.bind('env-3', identities[3]!)).toBe('bound');
  });

  it('a codex environment is bound to its executor key fingerprint (hyb1:) and read back after a restart; a malformed fingerprint is an error naming the line', async () => {
    const { generateHybridKeyPair } = await import('../../../src/noise-hybrid/hybrid-keys.js');
    const { hybridFingerprint } = await import('../../../src/noise-hybrid/hybrid-fingerprint.js');
    const file = tempFile();
    const [agent] = await keys(1);
    const codex = hybridFingerprint(generateHybridKeyPair().publicKey);
    const other = hybridFingerprint(generateHybridKeyPair().publicKey);
    const bindings = new BindingsFile(file, 100);
    expect(await bindings.bind('agent-env', agent!)).toBe('bound');
    expect(await bindings.bind('codex-env', codex)).toBe('bound');
    const restarted = new BindingsFile(file, 100);
    expect(await restarted.bind('codex-env', codex)).toBe('matches');
    expect(await restarted.bind('codex-env', other)).toBe('mismatch');
    expect(await restarted.bind('agent-env', codex)).toBe('mismatch');
    expect(await restarted.list()).toEqual(new Map([['agent-env', agent], ['codex-env', codex]]));
    writeFileSync(file, `codex-env ${codex}\nbad-env hyb1:short\n`);
    await expect(restarted.bind('codex-env', codex)).rejects.toThrow(/environment bindings file .* line 2/);
  });

  it('a damaged file is an error naming the line (the relay refuses registrations as unavailable), never a silent reset', async () => {
    const file = tempFile();
    const bindings = new BindingsFile(file, 100);
    const [a] = await keys(1);
    await bindings.bind('env-1', a!);
    writeFileSync(file, `env-1 ${a}\nenv-2 not-a-key\n`);
    await expect(bindings.bind('env-1', a!)).rejects.toThrow(/environment bindings file .* line 2/);
    await expect(bindings.bind('env-3', a!)).rejects.toThrow(/line 2/);
    expect(readFileSync(file, 'utf8')).toBe(`env-1 ${a}\nenv-2 not-a-key\n`);
  });

  it('a lock left by a dead process is broken; the default file is under XDG_STATE_HOME', async () => {
    const file = tempFile();
    const bindings = new BindingsFile(file, 100);
    const [a] = await keys(1);
    await bindings.bind('env-0', a!);
    writeFileSync(`${file}.lock`, '');
    const old = new Date(Date.now() - 120_000);
    utimesSync(`${file}.lock`, old, old);
    expect(await bindings.bind('env-1', a!)).toBe('bound');
    expect(defaultBindingsFile({ XDG_STATE_HOME: '/srv/state' })).toBe('/srv/state/execrelay/environment-bindings');
    expect(defaultBindingsFile({ XDG_STATE_HOME: 'relative' })).toBe(path.join(os.homedir(), '.local', 'state', 'execrelay', 'environment-bindings'));
  });
});

describe('PinnedEnvironmentKeys: operator-pinned keys in front of the store', () => {
  it('a pinned environment accepts only its key, even on its first registration, and never reaches the store', async () => {
    const [pinnedKey, other] = await keys(2);
    const store = new MemoryBindings(10);
    const pinned = new PinnedEnvironmentKeys(new Map([['prod', pinnedKey!]]), store);
    expect(await pinned.bind('prod', other!)).toBe('mismatch');
    expect(await pinned.bind('prod', pinnedKey!)).toBe('matches');
    expect(await store.list()).toEqual(new Map());
    // Others are bound by the store as usual.
    expect(await pinned.bind('dev', other!)).toBe('bound');
    expect(await pinned.bind('dev', pinnedKey!)).toBe('mismatch');
    expect(await pinned.list()).toEqual(new Map([['dev', other], ['prod', pinnedKey]]));
  });
});

function readdir(dir: string): string[] {
  return readdirSync(dir).sort();
}
