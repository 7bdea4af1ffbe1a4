import os from 'node:os';
import path from 'node:path';
import { userConfigDirectory } from './user-config-paths.js';

/** How the default client key path is shown in help texts and messages. */
export const DEFAULT_CLIENT_KEY_DISPLAY = '~/.config/execrelay/client.key';

/**
 * This user's client identity key, the one client commands use when `--key` is not given:
 * `$XDG_CONFIG_HOME/execrelay/client.key`, or `~/.config/execrelay/client.key` when XDG_CONFIG_HOME
 * is unset, empty or relative (as the XDG base directory spec says). `execrelay keygen` without
 * `--out` creates it.
 */
export function defaultClientKeyPath(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  return path.join(userConfigDirectory(env, home), 'client.key');
}

/** How the default hybrid client key path is shown in help texts and messages. */
export const DEFAULT_CLIENT_HYBRID_KEY_DISPLAY = '~/.config/execrelay/client-hybrid.key';

/**
 * This user's hybrid client key (X25519 + ML-KEM-768), the one client commands use towards a
 * codex-protocol environment when `--key` is not given: `client-hybrid.key` beside the client key.
 * `execrelay keygen --hybrid` without `--out` creates it.
 */
export function defaultClientHybridKeyPath(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  return path.join(userConfigDirectory(env, home), 'client-hybrid.key');
}
