import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { registerKeygenCommand, runKeygen } from '../../../../cli/keygen-command.js';
import {
  createIdentityFile,
  decodeIdentityFile,
  encodeIdentityFile,
  generateIdentity,
  IdentityError,
  isPublicIdentity,
  loadAuthorizedClients,
  loadIdentityFile,
  loadKnownEnvironments,
  parseAuthorizedClients,
  parseKnownEnvironments,
  parsePublicIdentity,
} from '../../../../src/noise/identity.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'execrelay-identity-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('identities', () => {
  it('generates Ed25519 identities named by their peer id', async () => {
    const identity = await generateIdentity();
    expect(identity.privateKey.type).toBe('Ed25519');
    expect(identity.publicIdentity).toMatch(/^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/);
    expect(identity.peerId.toString()).toBe(identity.publicIdentity);
    expect(parsePublicIdentity(identity.publicIdentity).equals(identity.peerId)).toBe(true);
    expect(parsePublicIdentity(`  ${identity.publicIdentity}\n`).toString()).toBe(identity.publicIdentity);
  });

  it('round-trips through the key file format', async () => {
    const identity = await generateIdentity();
    const text = encodeIdentityFile(identity);
    const document = JSON.parse(text) as Record<string, unknown>;
    expect(document).toMatchObject({ type: 'execrelay-identity', version: 1, keyType: 'Ed25519', publicIdentity: identity.publicIdentity });
    expect(typeof document.privateKey).toBe('string');
    const decoded = decodeIdentityFile(text);
    expect(decoded.publicIdentity).toBe(identity.publicIdentity);
    expect(decoded.privateKey.equals(identity.privateKey)).toBe(true);
  });

  it('rejects malformed or inconsistent key files with clear errors', async () => {
    const identity = await generateIdentity();
    const other = await generateIdentity();
    const good = JSON.parse(encodeIdentityFile(identity)) as Record<string, unknown>;
    expect(() => decodeIdentityFile('nope', 'key file k')).toThrow('key file k is not an execrelay key file (not JSON)');
    expect(() => decodeIdentityFile('[]', 'key file k')).toThrow('key file k is not an execrelay key file (expected a JSON object)');
    expect(() => decodeIdentityFile(JSON.stringify({ ...good, type: 'x' }), 'key file k')).toThrow(/type is not "execrelay-identity"/);
    expect(() => decodeIdentityFile(JSON.stringify({ ...good, version: 2 }), 'key file k')).toThrow('key file k has unsupported version 2 (expected 1)');
    expect(() => decodeIdentityFile(JSON.stringify({ ...good, privateKey: '***' }), 'key file k')).toThrow('key file k: "privateKey" must be a base64 string');
    expect(() => decodeIdentityFile(JSON.stringify({ ...good, privateKey: 'AAAA' }), 'key file k')).toThrow(/"privateKey" is not a valid libp2p private key/);
    expect(() => decodeIdentityFile(JSON.stringify({ ...good, publicIdentity: other.publicIdentity }), 'key file k')).toThrow(
      `key file k is inconsistent: "publicIdentity" is "${other.publicIdentity}" but the private key belongs to ${identity.publicIdentity}`,
    );
  });

  it('creates key files with mode 0600, refuses to overwrite, and loads them back', async () => {
    const path = join(dir, 'agent.key');
    const identity = await createIdentityFile(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const loaded = await loadIdentityFile(path);
    expect(loaded.publicIdentity).toBe(identity.publicIdentity);

    const before = await readFile(path, 'utf8');
    await expect(createIdentityFile(path)).rejects.toThrow(
      `refusing to overwrite existing file ${path} (key files are never overwritten; choose another path or remove it first)`,
    );
    expect(await readFile(path, 'utf8')).toBe(before);
    await expect(createIdentityFile(path)).rejects.toBeInstanceOf(IdentityError);
  });

  it('requires the parent directory to exist', async () => {
    const path = join(dir, 'missing', 'agent.key');
    await expect(createIdentityFile(path)).rejects.toThrow(`cannot create key file ${path}: directory ${join(dir, 'missing')} does not exist`);
  });

  it('refuses to load a key file readable by group or others unless allowed', async () => {
    const path = join(dir, 'loose.key');
    const identity = await createIdentityFile(path);
    await chmod(path, 0o644);
    await expect(loadIdentityFile(path)).rejects.toThrow(
      `key file ${path} has mode 0644; it must not be accessible by group or others (run: chmod 600 ${path})`,
    );
    expect((await loadIdentityFile(path, { allowInsecurePermissions: true })).publicIdentity).toBe(identity.publicIdentity);
    await chmod(path, 0o400);
    expect((await loadIdentityFile(path)).publicIdentity).toBe(identity.publicIdentity);
  });

  it('reports a missing key file and a directory given as key file', async () => {
    await expect(loadIdentityFile(join(dir, 'none.key'))).rejects.toThrow(`key file ${join(dir, 'none.key')} does not exist`);
    await chmod(dir, 0o700);
    await expect(loadIdentityFile(dir)).rejects.toThrow(`key file ${dir} is not a regular file`);
  });
});

describe('public identity strings', () => {
  it('explains what is wrong with an invalid public identity', async () => {
    expect(() => parsePublicIdentity('')).toThrow('public identity is empty');
    expect(() => parsePublicIdentity('   ')).toThrow('public identity is empty');
    expect(() => parsePublicIdentity('hello')).toThrow('invalid public identity "hello": expected an Ed25519 libp2p peer id such as 12D3KooW...');
    expect(() => parsePublicIdentity('12D3KooWxyz')).toThrow(/invalid public identity "12D3KooWxyz": expected an Ed25519 libp2p peer id/);
    expect(() => parsePublicIdentity('12D3KooW abc')).toThrow('invalid public identity "12D3KooW abc": it contains whitespace');
    // An RSA peer id carries no public key, so it could never be pinned.
    expect(() => parsePublicIdentity('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N')).toThrow(
      'invalid public identity "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N": it is a RSA peer id; only Ed25519 identities (12D3KooW...) are supported',
    );
    const identity = await generateIdentity();
    const flipped = identity.publicIdentity.slice(0, -1) + (identity.publicIdentity.endsWith('a') ? 'b' : 'a');
    expect(isPublicIdentity(identity.publicIdentity)).toBe(true);
    expect(isPublicIdentity(flipped.slice(0, 30))).toBe(false);
    expect(isPublicIdentity('x'.repeat(200))).toBe(false);
  });
});

describe('authorized clients file', () => {
  it('parses identities with comments and blank lines', async () => {
    const [a, b] = await Promise.all([generateIdentity(), generateIdentity()]);
    const text = `# clients allowed on this agent\n\n${a.publicIdentity}\n  ${b.publicIdentity}   # laptop\r\n${a.publicIdentity}\n`;
    expect(parseAuthorizedClients(text)).toEqual(new Set([a.publicIdentity, b.publicIdentity]));
    expect(parseAuthorizedClients('# nobody\n\n')).toEqual(new Set());
  });

  it('names the line of an invalid entry', async () => {
    const a = await generateIdentity();
    expect(() => parseAuthorizedClients(`${a.publicIdentity}\n# ok\nbogus\n`, 'clients.txt')).toThrow(
      'clients.txt line 3: invalid public identity "bogus": expected an Ed25519 libp2p peer id such as 12D3KooW...',
    );
    expect(() => parseAuthorizedClients(`\n${a.publicIdentity} ${a.publicIdentity}\n`, 'clients.txt')).toThrow(
      'clients.txt line 2: expected one public identity per line, found 2 fields',
    );
  });

  it('loads from a file', async () => {
    const a = await generateIdentity();
    const path = join(dir, 'authorized_clients');
    await writeFile(path, `${a.publicIdentity}\n`);
    expect(await loadAuthorizedClients(path)).toEqual(new Set([a.publicIdentity]));
    await writeFile(path, `x\n`);
    await expect(loadAuthorizedClients(path)).rejects.toThrow(`authorized clients file ${path} line 1: invalid public identity "x"`);
    await expect(loadAuthorizedClients(join(dir, 'nope'))).rejects.toThrow(`authorized clients file ${join(dir, 'nope')} does not exist`);
  });
});

describe('known environments file', () => {
  it('maps environment ids to identities', async () => {
    const [a, b] = await Promise.all([generateIdentity(), generateIdentity()]);
    const text = `# env identity\nbuild-box ${a.publicIdentity}\n\n  gpu-1\t${b.publicIdentity} # rack 3\nbuild-box ${a.publicIdentity}\n`;
    expect(parseKnownEnvironments(text)).toEqual(
      new Map([
        ['build-box', a.publicIdentity],
        ['gpu-1', b.publicIdentity],
      ]),
    );
  });

  it('names the line of an invalid or conflicting entry', async () => {
    const [a, b] = await Promise.all([generateIdentity(), generateIdentity()]);
    expect(() => parseKnownEnvironments(`env-only\n`, 'known')).toThrow('known line 1: expected "ENVIRONMENT_ID PUBLIC_IDENTITY", found 1 field');
    expect(() => parseKnownEnvironments(`\ne x y\n`, 'known')).toThrow('known line 2: expected "ENVIRONMENT_ID PUBLIC_IDENTITY", found 3 fields');
    expect(() => parseKnownEnvironments(`e nope\n`, 'known')).toThrow('known line 1: invalid public identity "nope"');
    expect(() => parseKnownEnvironments(`e ${a.publicIdentity}\n# x\ne ${b.publicIdentity}\n`, 'known')).toThrow(
      'known line 3: environment "e" is already listed on line 1 with a different identity',
    );
  });

  it('loads from a file', async () => {
    const a = await generateIdentity();
    const path = join(dir, 'known_environments');
    await writeFile(path, `prod ${a.publicIdentity}\n`);
    expect(await loadKnownEnvironments(path)).toEqual(new Map([['prod', a.publicIdentity]]));
  });
});

describe('execrelay keygen', () => {
  function program(): { program: Command; out: string[]; err: string[] } {
    const out: string[] = [];
    const err: string[] = [];
    const root = new Command()
      .name('execrelay')
      .exitOverride()
      .configureOutput({ writeOut: (text) => out.push(text), writeErr: (text) => err.push(text) });
    registerKeygenCommand(root);
    return { program: root, out, err };
  }

  const savedExitCode = process.exitCode;
  const savedKeyOut = process.env.EXECRELAY_KEY_OUT;
  afterEach(() => {
    process.exitCode = savedExitCode;
    if (savedKeyOut === undefined) delete process.env.EXECRELAY_KEY_OUT;
    else process.env.EXECRELAY_KEY_OUT = savedKeyOut;
  });

  it('creates a key file and prints only its public identity', async () => {
    const path = join(dir, 'client.key');
    const { program: root, out, err } = program();
    await root.parseAsync(['keygen', '--out', path], { from: 'user' });
    expect(err).toEqual([]);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^12D3KooW\S+\n$/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await loadIdentityFile(path)).publicIdentity).toBe(out[0]?.trim());
    expect(process.exitCode ?? 0).toBe(0);

    const show = program();
    await show.program.parseAsync(['keygen', '--show', path], { from: 'user' });
    expect(show.out).toEqual(out);
  });

  it('refuses to overwrite: error on stderr, nothing on stdout, exit code 255', async () => {
    const path = join(dir, 'client.key');
    await createIdentityFile(path);
    const { program: root, out, err } = program();
    await root.parseAsync(['keygen', '--out', path], { from: 'user' });
    expect(out).toEqual([]);
    expect(err.join('')).toBe(
      `execrelay keygen: refusing to overwrite existing file ${path} (key files are never overwritten; choose another path or remove it first)\n`,
    );
    expect(process.exitCode).toBe(255);
  });

  it('takes --out from EXECRELAY_KEY_OUT', async () => {
    const path = join(dir, 'from-env.key');
    process.env.EXECRELAY_KEY_OUT = path;
    const { program: root, out } = program();
    await root.parseAsync(['keygen'], { from: 'user' });
    expect(out[0]).toMatch(/^12D3KooW/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('without --out creates the default client key (once), and refuses --out with --show', async () => {
    delete process.env.EXECRELAY_KEY_OUT;
    const savedConfigHome = process.env.XDG_CONFIG_HOME;
    process.env.XDG_CONFIG_HOME = join(dir, 'config');
    try {
      const none = program();
      await none.program.parseAsync(['keygen'], { from: 'user' });
      const created = join(dir, 'config', 'execrelay', 'client.key');
      expect(none.out).toEqual([`${(await loadIdentityFile(created)).publicIdentity}\n`]);
      expect((await stat(join(dir, 'config', 'execrelay'))).mode & 0o777).toBe(0o700);
      expect(process.exitCode ?? 0).toBe(0);
      const again = program();
      await again.program.parseAsync(['keygen'], { from: 'user' });
      expect(again.out).toEqual([]);
      expect(again.err.join('')).toMatch(/refusing to overwrite existing file/);
      expect(process.exitCode).toBe(255);
    } finally {
      process.env.XDG_CONFIG_HOME = savedConfigHome;
    }

    const both = program();
    await expect(both.program.parseAsync(['keygen', '--out', 'a', '--show', 'b'], { from: 'user' })).rejects.toBeInstanceOf(CommanderError);
    expect(both.err.join('')).toMatch(/use either --out or --show, not both/);
  });

  it('runKeygen reports a missing parent directory', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const path = join(dir, 'no', 'such', 'dir', 'k.key');
    const code = await runKeygen({ out: path }, { writeOut: (t) => out.push(t), writeErr: (t) => err.push(t) });
    expect(code).toBe(255);
    expect(out).toEqual([]);
    expect(err.join('')).toBe(`execrelay keygen: cannot create key file ${path}: directory ${join(dir, 'no', 'such', 'dir')} does not exist\n`);
  });
});
