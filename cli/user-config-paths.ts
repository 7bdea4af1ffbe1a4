import os from 'node:os';
import path from 'node:path';

/**
 * This user's execrelay configuration directory: `$XDG_CONFIG_HOME/execrelay`, or
 * `~/.config/execrelay` when XDG_CONFIG_HOME is unset, empty or relative (as the XDG base directory
 * spec says). It holds the client key, the config file and the known environments file.
 */
export function userConfigDirectory(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  const configured = env.XDG_CONFIG_HOME;
  const configHome = configured !== undefined && path.isAbsolute(configured) ? configured : path.join(home, '.config');
  return path.join(configHome, 'execrelay');
}

/** How the default config file is shown in help texts. */
export const DEFAULT_CONFIG_DISPLAY = '~/.config/execrelay/config.toml';

/** The client config file read when neither `--config` nor EXECRELAY_CONFIG names one. */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  return path.join(userConfigDirectory(env, home), 'config.toml');
}

/** How the default known environments file is shown in help texts. */
export const DEFAULT_KNOWN_ENVIRONMENTS_DISPLAY = '~/.config/execrelay/known_environments';

/** The known environments file used when neither `--known-environments` nor the config names one. */
export function defaultKnownEnvironmentsPath(env: NodeJS.ProcessEnv = process.env, home: string = os.homedir()): string {
  return path.join(userConfigDirectory(env, home), 'known_environments');
}
