/**
 * Static identities for the Noise channel: Ed25519 keys from `@libp2p/crypto`, named by their libp2p
 * peer id string (`12D3KooW…`, the "public identity" users copy around like an SSH public key).
 *
 * Key file format (written by `execrelay keygen`, created with mode 0600, never overwritten):
 *
 * ```json
 * {
 *   "type": "execrelay-identity",
 *   "version": 1,
 *   "keyType": "Ed25519",
 *   "publicIdentity": "12D3KooW…",
 *   "privateKey": "<base64 of the libp2p PrivateKey protobuf (privateKeyToProtobuf)>"
 * }
 * ```
 *
 * `publicIdentity` is informational (so `cat` shows whose key it is); on load it must match the
 * identity derived from `privateKey`, otherwise the file is rejected as inconsistent.
 *
 * Permissions policy: loading a key file that grants any permission to group or others (mode & 0o077)
 * is refused, as OpenSSH refuses an unprotected private key, unless `allowInsecurePermissions` is set
 * (for secret mounts such as Kubernetes volumes, which default to 0644). Not checked on Windows.
 *
 * Authorized clients file: one public identity per line; `#` starts a comment (whole line or after
 * the identity); blank lines are ignored.
 *
 * Known environments file (like SSH known_hosts): `ENVIRONMENT_ID PUBLIC_IDENTITY` per line, same
 * comment rules. An environment listed twice with different identities is an error.
 */
import { constants as fsConstants } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import type { Ed25519PeerId, Ed25519PrivateKey } from '@libp2p/interface';

/** The `type` member of a key file. */
export const IDENTITY_FILE_TYPE = 'execrelay-identity';
/** The `version` member of a key file this code writes and reads. */
export const IDENTITY_FILE_VERSION = 1;
/** Mode of a newly created key file. */
export const IDENTITY_FILE_MODE = 0o600;

/** A private static identity: the Ed25519 key, its peer id and the peer id's string form. */
export interface Identity {
  readonly privateKey: Ed25519PrivateKey;
  readonly peerId: Ed25519PeerId;
  /** The public identity string (libp2p peer id, `12D3KooW…`). */
  readonly publicIdentity: string;
}

/** Any problem with a key, a key file, a public identity string or an identity list file. */
export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

/** Options for {@link loadIdentityFile}. */
export interface LoadIdentityOptions {
  /** Accept a key file readable by group or others (default false: such a file is refused). */
  allowInsecurePermissions?: boolean;
}

/** Generates a fresh Ed25519 identity. */
export async function generateIdentity(): Promise<Identity> {
  return identityFromPrivateKey(await generateKeyPair('Ed25519'));
}

/** Wraps an existing Ed25519 private key as an {@link Identity}. */
export function identityFromPrivateKey(privateKey: Ed25519PrivateKey): Identity {
  const peerId = peerIdFromPrivateKey(privateKey);
  return { privateKey, peerId, publicIdentity: peerId.toString() };
}

/** Serializes an identity in the key file format (JSON text, trailing newline). */
export function encodeIdentityFile(identity: Identity): string {
  const document = {
    type: IDENTITY_FILE_TYPE,
    version: IDENTITY_FILE_VERSION,
    keyType: 'Ed25519',
    publicIdentity: identity.publicIdentity,
    privateKey: Buffer.from(privateKeyToProtobuf(identity.privateKey)).toString('base64'),
  };
  return `${JSON.stringify(document, null, 2)}\n`;
}

/**
 * Parses key file text. `source` names the file in error messages.
 * @throws IdentityError when the text is not a valid, self-consistent Ed25519 key file.
 */
export function decodeIdentityFile(text: string, source = 'key file'): Identity {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new IdentityError(`${source} is not an execrelay key file (not JSON)`);
  }
  if (typeof document !== 'object' || document === null || Array.isArray(document)) {
    throw new IdentityError(`${source} is not an execrelay key file (expected a JSON object)`);
  }
  const fields = document as Record<string, unknown>;
  if (fields.type !== IDENTITY_FILE_TYPE) {
    throw new IdentityError(`${source} is not an execrelay key file (type is not "${IDENTITY_FILE_TYPE}")`);
  }
  if (fields.version !== IDENTITY_FILE_VERSION) {
    throw new IdentityError(`${source} has unsupported version ${JSON.stringify(fields.version)} (expected ${IDENTITY_FILE_VERSION})`);
  }
  if (fields.keyType !== 'Ed25519') {
    throw new IdentityError(`${source} has unsupported keyType ${JSON.stringify(fields.keyType)} (expected "Ed25519")`);
  }
  if (typeof fields.privateKey !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(fields.privateKey)) {
    throw new IdentityError(`${source}: "privateKey" must be a base64 string`);
  }
  let privateKey;
  try {
    privateKey = privateKeyFromProtobuf(Buffer.from(fields.privateKey, 'base64'));
  } catch (error) {
    throw new IdentityError(`${source}: "privateKey" is not a valid libp2p private key: ${(error as Error).message}`);
  }
  if (privateKey.type !== 'Ed25519') {
    throw new IdentityError(`${source}: "privateKey" is a ${privateKey.type} key; only Ed25519 is supported`);
  }
  const identity = identityFromPrivateKey(privateKey);
  if (fields.publicIdentity !== undefined && fields.publicIdentity !== identity.publicIdentity) {
    throw new IdentityError(
      `${source} is inconsistent: "publicIdentity" is ${JSON.stringify(fields.publicIdentity)} but the private key belongs to ${identity.publicIdentity}`,
    );
  }
  return identity;
}

/**
 * Writes `identity` to a new key file at `path` with mode 0600. Refuses to overwrite an existing file
 * and requires the parent directory to exist.
 * @throws IdentityError with a message naming the path.
 */
export async function writeIdentityFile(path: string, identity: Identity): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'wx', IDENTITY_FILE_MODE);
  } catch (error) {
    throw new IdentityError(describeCreateError(path, error));
  }
  try {
    await handle.writeFile(encodeIdentityFile(identity), 'utf8');
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw new IdentityError(`cannot write key file ${path}: ${(error as Error).message}`);
  }
  await handle.close();
}

/** Generates a new identity and writes it to a new key file (see {@link writeIdentityFile}). */
export async function createIdentityFile(path: string): Promise<Identity> {
  const identity = await generateIdentity();
  await writeIdentityFile(path, identity);
  return identity;
}

/**
 * Loads a key file. Refuses a file accessible by group or others unless
 * `options.allowInsecurePermissions` is set.
 * @throws IdentityError naming the path.
 */
export async function loadIdentityFile(path: string, options: LoadIdentityOptions = {}): Promise<Identity> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY);
  } catch (error) {
    throw new IdentityError(describeReadError('key file', path, error));
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new IdentityError(`key file ${path} is not a regular file`);
    const mode = stats.mode & 0o777;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0 && options.allowInsecurePermissions !== true) {
      throw new IdentityError(
        `key file ${path} has mode ${formatMode(mode)}; it must not be accessible by group or others (run: chmod 600 ${path})`,
      );
    }
    if (stats.size > 64 * 1024) throw new IdentityError(`key file ${path} is too large to be an execrelay key file`);
    const text = await handle.readFile('utf8');
    return decodeIdentityFile(text, `key file ${path}`);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Parses a public identity given by a user (an Ed25519 libp2p peer id, `12D3KooW…`). Surrounding
 * whitespace is ignored.
 * @throws IdentityError explaining what is wrong with the string.
 */
export function parsePublicIdentity(text: string): Ed25519PeerId {
  const trimmed = text.trim();
  if (trimmed.length === 0) throw new IdentityError('public identity is empty');
  const shown = trimmed.length > 80 ? `${trimmed.slice(0, 77)}...` : trimmed;
  if (/\s/.test(trimmed)) {
    throw new IdentityError(`invalid public identity "${shown}": it contains whitespace`);
  }
  let peerId;
  try {
    peerId = peerIdFromString(trimmed);
  } catch {
    throw new IdentityError(`invalid public identity "${shown}": expected an Ed25519 libp2p peer id such as 12D3KooW...`);
  }
  if (peerId.type !== 'Ed25519') {
    throw new IdentityError(
      `invalid public identity "${shown}": it is a ${peerId.type} peer id; only Ed25519 identities (12D3KooW...) are supported`,
    );
  }
  if (peerId.toString() !== trimmed) {
    throw new IdentityError(`invalid public identity "${shown}": not in canonical form (expected ${peerId.toString()})`);
  }
  return peerId;
}

/** True when `text` is a valid public identity (see {@link parsePublicIdentity}). */
export function isPublicIdentity(text: string): boolean {
  try {
    parsePublicIdentity(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * Parses an authorized clients file: one public identity per line, `#` comments, blank lines ignored.
 * Returns the set of canonical public identity strings. `source` names the file in error messages.
 * @throws IdentityError naming the line number of the first invalid line.
 */
export function parseAuthorizedClients(
  text: string,
  source = 'authorized clients file',
  /** Checks one identity and returns its canonical form; default: an Ed25519 public identity (a codex-wire agent passes the `hyb1:` parser). */
  parseIdentity: (token: string) => string = canonicalPublicIdentity,
): Set<string> {
  const identities = new Set<string>();
  for (const { lineNumber, tokens } of meaningfulLines(text)) {
    if (tokens.length !== 1) {
      throw new IdentityError(`${source} line ${lineNumber}: expected one public identity per line, found ${tokens.length} fields`);
    }
    identities.add(parseListedIdentity(tokens[0] ?? '', source, lineNumber, parseIdentity));
  }
  return identities;
}

/** Reads and parses an authorized clients file (see {@link parseAuthorizedClients}). */
export async function loadAuthorizedClients(path: string, parseIdentity?: (token: string) => string): Promise<Set<string>> {
  return parseAuthorizedClients(await readListFile('authorized clients file', path), `authorized clients file ${path}`, parseIdentity);
}

/** One environment of a known environments file: its identity and the line that gives it. */
export interface KnownEnvironment {
  identity: string;
  lineNumber: number;
}

/**
 * Parses a known environments file: `ENVIRONMENT_ID PUBLIC_IDENTITY` per line, `#` comments, blank
 * lines ignored. Returns environment id → canonical public identity.
 * @throws IdentityError naming the line number of the first invalid line, or of a conflicting duplicate.
 */
export function parseKnownEnvironments(text: string, source = 'known environments file', parseIdentity: (token: string) => string = canonicalPublicIdentity): Map<string, string> {
  return new Map([...parseKnownEnvironmentLines(text, source, parseIdentity)].map(([id, known]) => [id, known.identity]));
}

/** As {@link parseKnownEnvironments}, with the line each environment is first listed on. */
export function parseKnownEnvironmentLines(
  text: string,
  source = 'known environments file',
  /** Checks one identity and returns its canonical form (throws naming what is wrong); default: an Ed25519 public identity. */
  parseIdentity: (token: string) => string = canonicalPublicIdentity,
): Map<string, KnownEnvironment> {
  const environments = new Map<string, KnownEnvironment>();
  for (const { lineNumber, tokens } of meaningfulLines(text)) {
    if (tokens.length !== 2) {
      throw new IdentityError(
        `${source} line ${lineNumber}: expected "ENVIRONMENT_ID PUBLIC_IDENTITY", found ${tokens.length} field${tokens.length === 1 ? '' : 's'}`,
      );
    }
    const [environmentId = '', identityText = ''] = tokens;
    const identity = parseListedIdentity(identityText, source, lineNumber, parseIdentity);
    const existing = environments.get(environmentId);
    if (existing !== undefined && existing.identity !== identity) {
      throw new IdentityError(
        `${source} line ${lineNumber}: environment "${environmentId}" is already listed on line ${existing.lineNumber} with a different identity`,
      );
    }
    if (existing === undefined) environments.set(environmentId, { identity, lineNumber });
  }
  return environments;
}

/** Reads and parses a known environments file (see {@link parseKnownEnvironments}). */
export async function loadKnownEnvironments(path: string): Promise<Map<string, string>> {
  return parseKnownEnvironments(await readListFile('known environments file', path), `known environments file ${path}`);
}

function* meaningfulLines(text: string): Generator<{ lineNumber: number; tokens: string[] }> {
  const lines = text.split(/\r?\n/);
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index] ?? '';
    const hash = line.indexOf('#');
    const content = (hash === -1 ? line : line.slice(0, hash)).trim();
    if (content.length === 0) continue;
    yield { lineNumber: index + 1, tokens: content.split(/\s+/) };
  }
}

function canonicalPublicIdentity(token: string): string {
  return parsePublicIdentity(token).toString();
}

function parseListedIdentity(token: string, source: string, lineNumber: number, parseIdentity: (token: string) => string): string {
  try {
    return parseIdentity(token);
  } catch (error) {
    throw new IdentityError(`${source} line ${lineNumber}: ${(error as Error).message}`);
  }
}

async function readListFile(kind: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new IdentityError(describeReadError(kind, path, error), { cause: error });
  }
}

function describeCreateError(path: string, error: unknown): string {
  switch (errorCode(error)) {
    case 'EEXIST':
      return `refusing to overwrite existing file ${path} (key files are never overwritten; choose another path or remove it first)`;
    case 'ENOENT':
      return `cannot create key file ${path}: directory ${dirname(path)} does not exist`;
    case 'ENOTDIR':
      return `cannot create key file ${path}: ${dirname(path)} is not a directory`;
    case 'EACCES':
    case 'EPERM':
      return `cannot create key file ${path}: permission denied`;
    default:
      return `cannot create key file ${path}: ${(error as Error).message}`;
  }
}

function describeReadError(kind: string, path: string, error: unknown): string {
  switch (errorCode(error)) {
    case 'ENOENT':
      return `${kind} ${path} does not exist`;
    case 'EACCES':
    case 'EPERM':
      return `cannot read ${kind} ${path}: permission denied`;
    case 'EISDIR':
      return `${kind} ${path} is a directory`;
    default:
      return `cannot read ${kind} ${path}: ${(error as Error).message}`;
  }
}

function errorCode(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String((error as { code: unknown }).code) : undefined;
}

function formatMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}
