import { ENTRY_NAME_PATTERN } from './client-config.js';

/**
 * `execrelay exec [ENV] -- COMMAND…`: the operands commander collected (it drops the `--`), split
 * into the environment named before `--` and the command after it. `rawArgs` are the command line's
 * words (`process.argv`), whose first `--` is the separator. Without `--` every operand is the
 * command, as before named environments. Throws for more than one operand before `--`.
 */
export function splitExecOperands(operands: readonly string[], rawArgs: readonly string[]): { environment?: string; argv: string[] } {
  const separator = rawArgs.indexOf('--');
  if (separator === -1) return { argv: [...operands] };
  const before = operands.length - (rawArgs.length - separator - 1);
  if (before <= 0) return { argv: [...operands] };
  if (before > 1) throw new Error(`expected one environment before --, got ${operands.slice(0, before).join(' ')}`);
  return { environment: operands[0]!, argv: operands.slice(1) };
}

/**
 * A remote path operand: `ENV:PATH` (the named environment and an absolute path in it), or a path or
 * `file://` URI alone (the environment comes from the flags). `file:…` is always a URI, never an
 * environment called "file".
 */
export function parseRemoteOperand(operand: string): { environment?: string; path: string } {
  const colon = operand.indexOf(':');
  if (colon <= 0) return { path: operand };
  const name = operand.slice(0, colon);
  if (name === 'file' || !ENTRY_NAME_PATTERN.test(name)) return { path: operand };
  return { environment: name, path: operand.slice(colon + 1) };
}
