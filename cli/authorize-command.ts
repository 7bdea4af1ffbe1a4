import { Option, type Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { open, readFile, realpath, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { IdentityError, parseAuthorizedClients, parsePublicIdentity } from '../src/noise/identity.js';
import { isHybridFingerprint, parseHybridFingerprint } from '../src/noise-hybrid/hybrid-fingerprint.js';
import { ExitStatus } from './exit-status.js';

/** Mode of an authorized clients file that `execrelay authorize` creates. */
export const AUTHORIZED_CLIENTS_FILE_MODE = 0o600;

/** What `authorizeClient` / `revokeClient` did to the file. */
export type AuthorizationChange = 'created' | 'added' | 'removed' | 'unchanged';

/**
 * Adds `identity` to the authorized clients file `file`: creates the file (mode 0600; its directory
 * must exist) when it is missing, appends one line when the identity is not listed yet, and
 * changes nothing when it is. Existing lines and comments stay as they are. A running agent re-reads
 * the file when it changes.
 * @throws IdentityError for an invalid identity, a file that does not parse (it is not changed), or
 * a file that cannot be read or written.
 */
export async function authorizeClient(file: string, identity: string): Promise<AuthorizationChange> {
  const canonical = canonicalIdentity(identity);
  const text = await readExisting(file);
  if (text === undefined) {
    let handle;
    try {
      handle = await open(file, 'wx', AUTHORIZED_CLIENTS_FILE_MODE);
    } catch (error) {
      // Created meanwhile by someone else: add to it as to any existing file.
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return authorizeClient(file, identity);
      throw new IdentityError(describeWriteError(file, error));
    }
    try {
      await handle.writeFile(`${canonical}\n`, 'utf8');
    } finally {
      await handle.close();
    }
    return 'created';
  }
  if (parseExisting(file, text, identityKind(identity).parse).has(canonical)) return 'unchanged';
  // One append of one line: a reader (the agent) sees the file before or after it, never half a line
  // that it would keep (a failed parse keeps its last good list; the next change is read again).
  const separator = text.length > 0 && !text.endsWith('\n') ? '\n' : '';
  try {
    await writeFile(file, `${separator}${canonical}\n`, { flag: 'a' });
  } catch (error) {
    throw new IdentityError(describeWriteError(file, error));
  }
  return 'added';
}

/**
 * Removes every line listing `identity` from the authorized clients file (comments on other lines
 * stay), replacing the file in one rename with the same mode; changes nothing when it is not listed.
 * @throws IdentityError for an invalid identity, a missing file, a file that does not parse, or a
 * file that cannot be written.
 */
export async function revokeClient(file: string, identity: string): Promise<AuthorizationChange> {
  const canonical = canonicalIdentity(identity);
  const text = await readExisting(file);
  if (text === undefined) throw new IdentityError(`authorized clients file ${file} does not exist`);
  if (!parseExisting(file, text, identityKind(identity).parse).has(canonical)) return 'unchanged';
  const kept = text.split(/(?<=\n)/).filter((line) => {
    const hash = line.indexOf('#');
    return (hash === -1 ? line : line.slice(0, hash)).trim() !== canonical;
  });
  // Replace the file the link points to (a symlinked file stays a symlink), keeping its mode.
  const target = await realpath(file);
  const mode = (await stat(target)).mode & 0o777;
  const temporary = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temporary, kept.join(''), { flag: 'wx', mode });
    await rename(temporary, target);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new IdentityError(describeWriteError(file, error));
  }
  return 'removed';
}

/**
 * The identity's canonical form and the parser of the file it belongs in: a `hyb1:` fingerprint
 * (an agent with `--wire codex`, whose file lists hybrid client keys) or an Ed25519 identity.
 */
function identityKind(identity: string): { canonical: string; parse: (token: string) => string } {
  if (isHybridFingerprint(identity)) return { canonical: parseHybridFingerprint(identity), parse: parseHybridFingerprint };
  return { canonical: parsePublicIdentity(identity).toString(), parse: (token) => parsePublicIdentity(token).toString() };
}

function canonicalIdentity(identity: string): string {
  return identityKind(identity).canonical;
}

/** The file's text, or undefined when it does not exist. */
async function readExisting(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'EISDIR') throw new IdentityError(`authorized clients file ${file} is a directory`);
    if (code === 'EACCES' || code === 'EPERM') throw new IdentityError(`cannot read authorized clients file ${file}: permission denied`);
    throw new IdentityError(`cannot read authorized clients file ${file}: ${(error as Error).message}`);
  }
}

function parseExisting(file: string, text: string, parseIdentity: (token: string) => string): Set<string> {
  try {
    return parseAuthorizedClients(text, `authorized clients file ${file}`, parseIdentity);
  } catch (error) {
    throw new IdentityError(`refusing to change ${file}, which does not parse: ${(error as Error).message}`);
  }
}

function describeWriteError(file: string, error: unknown): string {
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return `cannot create authorized clients file ${file}: directory ${path.dirname(file)} does not exist (create it first)`;
    case 'ENOTDIR':
      return `cannot create authorized clients file ${file}: ${path.dirname(file)} is not a directory`;
    case 'EACCES':
    case 'EPERM':
      return `cannot write authorized clients file ${file}: permission denied`;
    default:
      return `cannot write authorized clients file ${file}: ${(error as Error).message}`;
  }
}

/** Where `runAuthorize` reports: nothing goes to stdout (nothing is asked for), what it did to stderr. */
export interface AuthorizeOutput {
  writeErr(text: string): void;
}

/** Runs `execrelay authorize`; returns the exit code (0 also when nothing had to change, 255 after an error). */
export async function runAuthorize(
  request: { file: string | undefined; identity: string; remove: boolean },
  output: AuthorizeOutput,
): Promise<number> {
  if (request.file === undefined || request.file.trim() === '') {
    output.writeErr('execrelay authorize: give the agent\'s authorized clients file: --authorized-clients FILE (or EXECRELAY_AUTHORIZED_CLIENTS)\n');
    return ExitStatus.ExecrelayFailure;
  }
  try {
    const change = request.remove ? await revokeClient(request.file, request.identity) : await authorizeClient(request.file, request.identity);
    const identity = canonicalIdentity(request.identity);
    const said: Record<AuthorizationChange, string> = {
      created: `created ${request.file} (mode 0600) authorizing ${identity}`,
      added: `added ${identity} to ${request.file}`,
      removed: `removed ${identity} from ${request.file}`,
      unchanged: request.remove ? `${identity} is not in ${request.file}; nothing to remove` : `${identity} is already in ${request.file}; unchanged`,
    };
    output.writeErr(`execrelay authorize: ${said[change]}\n`);
    return 0;
  } catch (error) {
    output.writeErr(`execrelay authorize: ${(error as Error).message}\n`);
    return ExitStatus.ExecrelayFailure;
  }
}

/** Adds `execrelay authorize [--remove] --authorized-clients FILE IDENTITY` to `program`. */
export function registerAuthorizeCommand(program: Command): void {
  program
    .command('authorize')
    .description("let a client identity use this agent: add it to the agent's authorized clients file (run on the agent's host)")
    .argument(
      '<identity>',
      "the client's public identity (12D3KooW..., what `execrelay keygen` printed on the client; for an agent with --wire codex its hyb1: fingerprint, what `execrelay keygen --hybrid` printed)",
    )
    .addOption(new Option('--authorized-clients <file>', "the agent's authorized clients file (its --authorized-clients)").env('EXECRELAY_AUTHORIZED_CLIENTS'))
    .addOption(new Option('--remove', 'take the identity out of the file instead (the agent refuses it from its next connection)').default(false))
    .addHelpText(
      'after',
      `
The file lists one public identity per line (an agent with --wire codex: hyb1: fingerprints only); "#" starts a comment. A missing file is created with
mode 0600 (its directory must exist); an identity already listed is left alone (exit 0); existing
lines and comments are kept; a file that does not parse is not changed (exit 1). A running agent
re-reads the file when it changes: no restart. Messages go to stderr; errors exit 1.`,
    )
    .action(async (identity: string, options: { authorizedClients?: string; remove: boolean }) => {
      const exitCode = await runAuthorize({ file: options.authorizedClients, identity, remove: options.remove }, { writeErr: (text) => process.stderr.write(text) });
      if (exitCode !== 0) process.exitCode = exitCode;
    });
}
