import { readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { isPublicIdentity } from '../src/noise/identity.js';
import { ENVIRONMENT_ID_PATTERN } from '../src/relay-control/relay-endpoints.js';
import { defaultConfigPath } from './user-config-paths.js';

/** A config file larger than this is refused (it is a handful of entries). */
export const MAX_CONFIG_FILE_BYTES = 256 * 1024;

/** The names of config entries (`execrelay exec laptop -- …`, `laptop:/srv`): as environment ids. */
export const ENTRY_NAME_PATTERN = ENVIRONMENT_ID_PATTERN;

/** A bad config file: the message names the file and the key. */
export class ClientConfigError extends Error {
  override readonly name = 'ClientConfigError';
}

const filePath = z.string().min(1, 'must not be empty');
const websocketUrl = z.string().regex(/^wss?:\/\/[^\s]+$/, 'must be a ws:// or wss:// URL');

const entrySchema = z.strictObject({
  /** Relay URL. */
  relay: websocketUrl.optional(),
  /** The environment id at the relay (default: the entry's name). */
  environment: z.string().regex(ENVIRONMENT_ID_PATTERN, 'must be 1-128 characters of letters, digits, ".", "_" or "-"').optional(),
  /** The agent's public identity. */
  agent_key: z.string().refine(isPublicIdentity, 'must be a public identity (12D3KooW…, from `execrelay keygen`)').optional(),
  token_file: filePath.optional(),
  /** This client's key file. */
  key: filePath.optional(),
  known_environments: filePath.optional(),
  /** Default working directory of `exec`. */
  cwd: z.string().refine((value) => path.posix.isAbsolute(value), 'must be an absolute path').optional(),
  accept_new: z.boolean().optional(),
  /** A direct agent instead of a relay. */
  url: websocketUrl.optional(),
  agent_token_file: filePath.optional(),
});

const configSchema = z.strictObject({
  /** Learn an unknown environment's identity on first contact (for every entry, and for flags-only use). */
  accept_new: z.boolean().optional(),
  known_environments: filePath.optional(),
  environments: z.record(z.string().regex(ENTRY_NAME_PATTERN, 'entry names must be 1-128 characters of letters, digits, ".", "_" or "-"'), entrySchema).default({}),
});

/** One named environment, its file paths resolved (`~/` and relative to the config file's directory). */
export interface EnvironmentEntry {
  name: string;
  relay?: string;
  /** The environment id at the relay: `environment`, else the entry's name. */
  environmentId: string;
  agentKey?: string;
  tokenFile?: string;
  key?: string;
  knownEnvironments?: string;
  cwd?: string;
  acceptNew?: boolean;
  url?: string;
  agentTokenFile?: string;
}

/** A client config file, read and validated. */
export interface ClientConfig {
  /** The file it came from, or undefined when there is none (the default path does not exist). */
  file: string | undefined;
  acceptNew: boolean;
  knownEnvironments?: string;
  environments: ReadonlyMap<string, EnvironmentEntry>;
}

const EMPTY_CONFIG: ClientConfig = { file: undefined, acceptNew: false, environments: new Map() };

/**
 * Reads the client config: `explicit` (`--config` or EXECRELAY_CONFIG) must exist; the default
 * (`$XDG_CONFIG_HOME/execrelay/config.toml`) may be absent, which is an empty config.
 * @throws ClientConfigError naming the file (and the key) for a missing, oversized, unparsable or invalid file.
 */
export async function loadClientConfig(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ClientConfig> {
  if (explicit !== undefined && explicit.trim() === '') throw new ClientConfigError('--config (EXECRELAY_CONFIG) is empty: give a config file');
  const file = explicit ?? defaultConfigPath(env);
  let size: number;
  try {
    const info = await stat(file);
    if (!info.isFile()) throw new ClientConfigError(`config file ${file}: not a regular file`);
    size = info.size;
  } catch (error) {
    if (error instanceof ClientConfigError) throw error;
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && explicit === undefined) return EMPTY_CONFIG;
    throw new ClientConfigError(`config file ${file}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'does not exist' : (error as Error).message}`);
  }
  if (size > MAX_CONFIG_FILE_BYTES) throw new ClientConfigError(`config file ${file}: larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
  return parseClientConfig(await readFile(file, 'utf8'), file);
}

/** Parses and validates a config file's text; `file` names it in errors and anchors relative paths. */
export function parseClientConfig(text: string, file: string): ClientConfig {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (error) {
    // smol-toml's TomlError has the line and column, and a multi-line message: keep its first line.
    const { line, column } = error as { line?: number; column?: number };
    const where = typeof line === 'number' ? ` (line ${line}${typeof column === 'number' ? `, column ${column}` : ''})` : '';
    const reason = ((error as Error).message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '').trim();
    throw new ClientConfigError(`config file ${file}: not valid TOML${where}: ${reason}`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.path.map(String).join('.');
    const message = issue.code === 'unrecognized_keys' ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}` : issue.message;
    throw new ClientConfigError(`config file ${file}: ${key === '' ? '' : `${key}: `}${message}`);
  }
  const base = path.dirname(path.resolve(file));
  const resolve = (value: string | undefined): string | undefined => (value === undefined ? undefined : resolveConfigPath(value, base));
  const environments = new Map<string, EnvironmentEntry>();
  for (const [name, entry] of Object.entries(parsed.data.environments)) {
    environments.set(name, dropUndefined({
      name,
      environmentId: entry.environment ?? name,
      relay: entry.relay,
      agentKey: entry.agent_key,
      tokenFile: resolve(entry.token_file),
      key: resolve(entry.key),
      knownEnvironments: resolve(entry.known_environments),
      cwd: entry.cwd,
      acceptNew: entry.accept_new,
      url: entry.url,
      agentTokenFile: resolve(entry.agent_token_file),
    }));
  }
  return dropUndefined({ file, acceptNew: parsed.data.accept_new ?? false, knownEnvironments: resolve(parsed.data.known_environments), environments });
}

/** `~/x` under the home directory, a relative path against the config file's directory. */
function resolveConfigPath(value: string, base: string): string {
  if (value === '~' || value.startsWith('~/')) return path.join(os.homedir(), value.slice(1));
  return path.resolve(base, value);
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
