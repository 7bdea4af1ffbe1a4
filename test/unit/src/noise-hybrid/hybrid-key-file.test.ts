import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hybridFingerprint } from '../../../../src/noise-hybrid/hybrid-fingerprint.js';
import { HybridIdentityError } from '../../../../src/noise-hybrid/hybrid-identity-error.js';
import {
  createHybridKeyFile,
  decodeHybridKeyFile,
  encodeHybridKeyFile,
  loadHybridKeyFile,
  writeHybridKeyFile,
} from '../../../../src/noise-hybrid/hybrid-key-file.js';
import { generateHybridKeyPair, sameHybridPublicKey } from '../../../../src/noise-hybrid/hybrid-keys.js';

let directory: string;
beforeAll(async () => {
  directory = await mkdtemp(join(tmpdir(), 'hybrid-key-file-'));
});
afterAll(async () => {
  await rm(directory, { recursive: true, force: true });
});

describe('hybrid key file', () => {
  it('creates a 0600 file, never overwrites it, and loads the same key pair back', async () => {
    const path = join(directory, 'a.key');
    const keyPair = await createHybridKeyFile(path);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const text = await readFile(path, 'utf8');
    expect(JSON.parse(text)).toMatchObject({ type: 'execrelay-hybrid-identity', version: 1, fingerprint: hybridFingerprint(keyPair.publicKey) });
    const loaded = await loadHybridKeyFile(path);
    expect(sameHybridPublicKey(loaded.publicKey, keyPair.publicKey)).toBe(true);
    await expect(writeHybridKeyFile(path, generateHybridKeyPair())).rejects.toThrow(/refusing to overwrite/);
    expect(await readFile(path, 'utf8')).toBe(text);
  });

  it('refuses a file readable by group or others unless allowed', async () => {
    const path = join(directory, 'open.key');
    await createHybridKeyFile(path);
    await chmod(path, 0o644);
    await expect(loadHybridKeyFile(path)).rejects.toThrow(/mode 0644.*chmod 600/);
    await expect(loadHybridKeyFile(path, { allowInsecurePermissions: true })).resolves.toBeDefined();
  });

  it('names a missing file and a missing directory', async () => {
    await expect(loadHybridKeyFile(join(directory, 'none.key'))).rejects.toThrow(/does not exist/);
    await expect(createHybridKeyFile(join(directory, 'no-dir', 'x.key'))).rejects.toThrow(HybridIdentityError);
  });

  it('refuses text that is not a valid, self-consistent key file, naming the member', () => {
    const good = JSON.parse(encodeHybridKeyFile(generateHybridKeyPair())) as Record<string, unknown>;
    const bad = (changes: Record<string, unknown>) => JSON.stringify({ ...good, ...changes });
    expect(() => decodeHybridKeyFile('not json')).toThrow(/not JSON/);
    expect(() => decodeHybridKeyFile(bad({ type: 'execrelay-identity' }))).toThrow(/"type"/);
    expect(() => decodeHybridKeyFile(bad({ version: 2 }))).toThrow(/"version"/);
    expect(() => decodeHybridKeyFile(bad({ suite: 'x' }))).toThrow(/"suite"/);
    expect(() => decodeHybridKeyFile(bad({ x25519PrivateKey: 'AAAA' }))).toThrow(/"x25519PrivateKey"/);
    expect(() => decodeHybridKeyFile(bad({ mlkem768Seed: Buffer.alloc(63).toString('base64') }))).toThrow(/"mlkem768Seed"/);
    const other = hybridFingerprint(generateHybridKeyPair().publicKey);
    expect(() => decodeHybridKeyFile(bad({ fingerprint: other }))).toThrow(/inconsistent/);
  });

  it('refuses an oversized file without parsing it', async () => {
    const path = join(directory, 'big.key');
    await writeFile(path, ' '.repeat(20_000), { mode: 0o600 });
    await expect(loadHybridKeyFile(path)).rejects.toThrow(/too large/);
  });
});
