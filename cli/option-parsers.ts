import { InvalidArgumentError } from 'commander';

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
