import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { IdentityError, parseKnownEnvironmentLines, parsePublicIdentity, type KnownEnvironment } from '../src/noise/identity.js';

/** A known environments file larger than this is refused. */
export const MAX_KNOWN_ENVIRONMENTS_BYTES = 4 * 1024 * 1024;

/**
 * The environment's entry in a known environments file (`ENVIRONMENT_ID PUBLIC_IDENTITY` lines),
 * or undefined. A missing file is empty when `mayBeMissing` (the default file), an error otherwise.
 * @throws IdentityError for an unreadable, oversized or unparsable file, naming it and the line.
 */
export async function lookUpKnownEnvironment(file: string, environmentId: string, mayBeMissing: boolean): Promise<KnownEnvironment | undefined> {
  const text = await readKnownEnvironments(file, mayBeMissing);
  return parseKnownEnvironmentLines(text, `known environments file ${file}`).get(environmentId);
}

async function readKnownEnvironments(file: string, mayBeMissing: boolean): Promise<string> {
  try {
    // Its size is checked before it is read.
    if ((await stat(file)).size > MAX_KNOWN_ENVIRONMENTS_BYTES) throw new IdentityError(`known environments file ${file} is larger than ${MAX_KNOWN_ENVIRONMENTS_BYTES} bytes`);
    return await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof IdentityError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && mayBeMissing) return '';
    throw new IdentityError(`cannot read known environments file ${file}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`, { cause: error });
  }
}

/**
 * Records `environmentId identity` at the end of the known environments file, atomically (the
 * whole file is rewritten into a temporary file in the same directory, synced and renamed over
 * it, mode 0600; the directory is created 0700 if missing). Returns the line number it is on.
 * @throws IdentityError if the file already lists the environment (with this or another identity).
 */
export async function recordKnownEnvironment(file: string, environmentId: string, identity: string): Promise<number> {
  const before = await readKnownEnvironments(file, true);
  const listed = parseKnownEnvironmentLines(before, `known environments file ${file}`).get(environmentId);
  if (listed !== undefined) throw new IdentityError(`known environments file ${file} line ${listed.lineNumber} already lists environment ${environmentId}`);
  const prefix = before === '' || before.endsWith('\n') ? before : `${before}\n`;
  const after = `${prefix}${environmentId} ${identity}\n`;
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(temporary, 'wx', 0o600);
  try {
    await handle.writeFile(after);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temporary, file);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
  return prefix.split('\n').length;
}

/** The identity's fingerprint as ssh shows a host key's: `SHA256:` and the unpadded base64 SHA-256 of its public key. */
export function identityFingerprint(identity: string): string {
  const publicKey = parsePublicIdentity(identity).publicKey.raw;
  return `SHA256:${createHash('sha256').update(publicKey).digest('base64').replace(/=+$/, '')}`;
}
