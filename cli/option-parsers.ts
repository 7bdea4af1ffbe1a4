import { InvalidArgumentError, Option } from 'commander';
import { ALLOW_INSECURE_TOKEN_PERMISSIONS_FLAG } from '../src/auth/bearer-tokens.js';

/** Commander argument parser for a positive whole number within `max`. */
export function positiveInteger(max: number = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a positive whole number');
    const parsed = Number(value);
    if (parsed < 1 || parsed > max) throw new InvalidArgumentError(`expected a whole number from 1 to ${max}`);
    return parsed;
  };
}

/** Commander collector for a repeatable `KEY=VALUE` option. */
export function keyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got "${value}"`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

/** `--allow-insecure-token-permissions`: shared by every command that reads a token file. */
export function insecureTokenPermissionsOption(): Option {
  return new Option(ALLOW_INSECURE_TOKEN_PERMISSIONS_FLAG, 'accept a token file readable by group or others (with a warning)')
    .env('EXECRELAY_ALLOW_INSECURE_TOKEN_PERMISSIONS')
    .default(false);
}

/** Commander argument parser for a fraction greater than 0 and at most 1 (`0.25`). */
export function fraction(value: string): number {
  const parsed = Number(value.trim());
  if (!/^\d*\.?\d+$/.test(value.trim()) || !(parsed > 0 && parsed <= 1)) throw new InvalidArgumentError('expected a fraction greater than 0 and at most 1, e.g. 0.25');
  return parsed;
}
