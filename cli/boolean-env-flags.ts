import type { Command } from 'commander';

const ON = ['1', 'true', 'yes', 'on'];
const OFF = ['', '0', 'false', 'no', 'off'];

/**
 * Reads the environment variables of `command`'s boolean flags strictly. Commander turns a boolean
 * flag on when its variable is set to anything, even `0` or `false`: `EXECRELAY_HTTP_ALLOW_PRIVATE=0`
 * would open private addresses. Here 1/true/yes/on turn a flag on, 0/false/no/off or empty leave it
 * off, and any other value is an error naming the variable. A flag given on the command line wins
 * as before. Run it before the command's action (`preAction`).
 */
export function applyStrictBooleanEnv(command: Command): void {
  for (const option of command.options) {
    if (!option.isBoolean() || option.envVar === undefined || option.negate) continue;
    const name = option.attributeName();
    if (command.getOptionValueSource(name) !== 'env') continue;
    const raw = process.env[option.envVar] ?? '';
    const text = raw.trim().toLowerCase();
    if (ON.includes(text)) command.setOptionValueWithSource(name, true, 'env');
    else if (OFF.includes(text)) command.setOptionValueWithSource(name, false, 'env');
    else throw new Error(`${option.envVar} must be one of ${[...ON, ...OFF.filter((v) => v !== '')].join(', ')} (or empty), not ${JSON.stringify(raw)}`);
  }
}
