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
