import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, lstatSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { authorizeClient, revokeClient, runAuthorize } from '../../../cli/authorize-command.js';
import { generateIdentity } from '../../../src/noise/identity.js';
import { hybridFingerprint } from '../../../src/noise-hybrid/hybrid-fingerprint.js';
import { generateHybridKeyPair } from '../../../src/noise-hybrid/hybrid-keys.js';

describe('execrelay authorize', () => {
  let alice = '';
  let bob = '';
  let dir = '';

  beforeAll(async () => {
    alice = (await generateIdentity()).publicIdentity;
    bob = (await generateIdentity()).publicIdentity;
  });
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function fresh(): string {
    dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-authorize-unit-'));
    return path.join(dir, 'authorized-clients');
  }

  async function run(file: string | undefined, identity: string, remove = false): Promise<{ code: number; stderr: string }> {
    let stderr = '';
    const code = await runAuthorize({ file, identity, remove }, { writeErr: (text) => (stderr += text) });
    return { code, stderr };
  }

  it('creates a missing file with mode 0600 holding the identity', async () => {
    const file = fresh();
    expect(await run(file, alice)).toEqual({ code: 0, stderr: `execrelay authorize: created ${file} (mode 0600) authorizing ${alice}\n` });
    expect(readFileSync(file, 'utf8')).toBe(`${alice}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('appends a new identity, keeping existing lines and comments (also without a final newline)', async () => {
    const file = fresh();
    writeFileSync(file, `# ops team\n${alice} # alice's laptop`);
    expect(await run(file, bob)).toEqual({ code: 0, stderr: `execrelay authorize: added ${bob} to ${file}\n` });
    expect(readFileSync(file, 'utf8')).toBe(`# ops team\n${alice} # alice's laptop\n${bob}\n`);
  });

  it('is idempotent: an identity already listed changes nothing, and says so', async () => {
    const file = fresh();
    writeFileSync(file, `${alice}  # listed with a comment\n`);
    const before = readFileSync(file, 'utf8');
    expect(await run(file, `  ${alice}  `)).toEqual({ code: 0, stderr: `execrelay authorize: ${alice} is already in ${file}; unchanged\n` });
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('refuses an invalid identity and a file that does not parse, changing nothing', async () => {
    const file = fresh();
    const invalid = await run(file, '12D3KooWnot-a-key');
    expect(invalid.code).toBe(255);
    expect(invalid.stderr).toMatch(/^execrelay authorize: invalid public identity "12D3KooWnot-a-key"/);
    expect(() => statSync(file)).toThrow(/ENOENT/);

    writeFileSync(file, `${alice}\n${alice} ${bob}\n`);
    const unparsable = await run(file, bob);
    expect(unparsable.code).toBe(255);
    expect(unparsable.stderr).toBe(
      `execrelay authorize: refusing to change ${file}, which does not parse: authorized clients file ${file} line 2: expected one public identity per line, found 2 fields\n`,
    );
    expect(readFileSync(file, 'utf8')).toBe(`${alice}\n${alice} ${bob}\n`);
  });

  it('writes hyb1: fingerprints for an agent with --wire codex (canonical, idempotent, removable); a file mixing both kinds is not changed', async () => {
    const file = fresh();
    const hybrid = hybridFingerprint(generateHybridKeyPair().publicKey);
    expect(await run(file, `  ${hybrid.toUpperCase().replace('HYB1:', 'hyb1:')} `)).toEqual({ code: 0, stderr: `execrelay authorize: created ${file} (mode 0600) authorizing ${hybrid}\n` });
    expect((await run(file, hybrid)).stderr).toMatch(/already in/);
    expect(readFileSync(file, 'utf8')).toBe(`${hybrid}\n`);
    const mixed = await run(file, alice);
    expect(mixed.code).toBe(255);
    expect(mixed.stderr).toMatch(/refusing to change .* which does not parse: .*line 1/);
    expect(await run(file, hybrid, true)).toEqual({ code: 0, stderr: `execrelay authorize: removed ${hybrid} from ${file}\n` });
    const bad = await run(file, 'hyb1:not-base32');
    expect(bad.code).toBe(255);
    expect(bad.stderr).toMatch(/invalid hybrid key fingerprint/);
  });

  it('needs the file (flag or environment variable) and its directory', async () => {
    fresh();
    for (const missing of [undefined, '', '  ']) {
      expect(await run(missing, alice)).toEqual({
        code: 255,
        stderr: "execrelay authorize: give the agent's authorized clients file: --authorized-clients FILE (or EXECRELAY_AUTHORIZED_CLIENTS)\n",
      });
    }
    const nested = path.join(dir, 'no-such-dir', 'authorized-clients');
    expect(await run(nested, alice)).toEqual({
      code: 255,
      stderr: `execrelay authorize: cannot create authorized clients file ${nested}: directory ${path.dirname(nested)} does not exist (create it first)\n`,
    });
    mkdirSync(path.join(dir, 'a-directory'));
    expect((await run(path.join(dir, 'a-directory'), alice)).stderr).toMatch(/is a directory/);
  });

  it('--remove takes every line of the identity out, keeps the rest and the mode, and is idempotent', async () => {
    const file = fresh();
    writeFileSync(file, `# team\n${alice} # alice\n${bob}\n${alice}\n`);
    chmodSync(file, 0o640);
    expect(await run(file, alice, true)).toEqual({ code: 0, stderr: `execrelay authorize: removed ${alice} from ${file}\n` });
    expect(readFileSync(file, 'utf8')).toBe(`# team\n${bob}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(await run(file, alice, true)).toEqual({ code: 0, stderr: `execrelay authorize: ${alice} is not in ${file}; nothing to remove\n` });
    const missing = await run(path.join(dir, 'missing'), alice, true);
    expect(missing.code).toBe(255);
    expect(missing.stderr).toMatch(/does not exist/);
  });

  it('--remove through a symlink replaces the target and keeps the link', async () => {
    const file = fresh();
    const target = path.join(dir, 'real-list');
    writeFileSync(target, `${alice}\n${bob}\n`);
    symlinkSync(target, file);
    expect(await revokeClient(file, alice)).toBe('removed');
    expect(lstatSync(file).isSymbolicLink()).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe(`${bob}\n`);
    expect(await authorizeClient(file, alice)).toBe('added');
    expect(readFileSync(target, 'utf8')).toBe(`${bob}\n${alice}\n`);
  });
});
