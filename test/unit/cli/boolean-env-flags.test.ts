import { Command, Option } from 'commander';
import { afterEach, describe, expect, it } from 'vitest';
import { applyStrictBooleanEnv } from '../../../cli/boolean-env-flags.js';

const VARIABLE = 'EXECRELAY_TEST_STRICT_FLAG';

/** Parses `args` with one boolean flag read from VARIABLE, applying the strict reading before the action. */
async function parse(args: string[], value: string | undefined): Promise<boolean> {
  if (value === undefined) delete process.env[VARIABLE];
  else process.env[VARIABLE] = value;
  let seen: boolean | undefined;
  const program = new Command().exitOverride();
  program
    .command('run')
    .addOption(new Option('--open-everything', 'a dangerous switch').env(VARIABLE).default(false))
    .action((options: { openEverything: boolean }) => {
      seen = options.openEverything;
    });
  program.hook('preAction', (_root, action) => applyStrictBooleanEnv(action));
  await program.parseAsync(['run', ...args], { from: 'user' });
  return seen!;
}

describe('boolean flags from the environment are read strictly', () => {
  afterEach(() => {
    delete process.env[VARIABLE];
  });

  it('0, false, no, off and empty leave the flag off (commander alone turns it on for any value)', async () => {
    for (const value of ['0', 'false', 'no', 'off', '', ' FALSE ']) expect(await parse([], value), value).toBe(false);
  });

  it('1, true, yes and on turn it on; unset leaves the default', async () => {
    for (const value of ['1', 'true', 'yes', 'on', 'Yes']) expect(await parse([], value), value).toBe(true);
    expect(await parse([], undefined)).toBe(false);
  });

  it('the command line wins over the variable', async () => {
    expect(await parse(['--open-everything'], '0')).toBe(true);
  });

  it('any other value is an error naming the variable and the value', async () => {
    await expect(parse([], 'maybe')).rejects.toThrow(`${VARIABLE} must be one of 1, true, yes, on, 0, false, no, off (or empty), not "maybe"`);
  });
});
