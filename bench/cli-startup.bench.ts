/**
 * CLI start-up cost: CPU time (user + system) of `execrelay --version`, `execrelay exec --help` and
 * `execrelay walk --help` as whole processes, against a bare `node -e 0` measured in the same run,
 * interleaved round by round. Each subcommand's module is loaded only when that command is named,
 * and a command's client code only when it runs, so these stay near the bare runtime's cost.
 */
import { execFileSync } from 'node:child_process';
import { benchNumber, type BenchFigure } from './bench-result.js';
import { CLI } from './cli-process.js';

const BASELINE = 'node -e 0';

const VARIANTS: ReadonlyArray<readonly [string, string[]]> = [
  [BASELINE, ['-e', '0']],
  ['execrelay --version', [CLI, '--version']],
  ['execrelay exec --help', [CLI, 'exec', '--help']],
  ['execrelay walk --help', [CLI, 'walk', '--help']],
];

/** CPU milliseconds (user + system) of one `node ARGS` run, from bash's `time` of the child. */
function cpuMs(args: readonly string[]): number {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const output = execFileSync('bash', ['-c', `TIMEFORMAT='%3U %3S'; { time ${quoted} >/dev/null 2>&1; } 2>&1`], { encoding: 'utf8' });
  const [user, system] = output.trim().split(/\s+/).map(Number);
  if (!Number.isFinite(user) || !Number.isFinite(system)) throw new Error(`unexpected time output: ${output}`);
  return (user! + system!) * 1000;
}

export async function run(): Promise<BenchFigure[]> {
  const rounds = benchNumber('BENCH_CLI_STARTUP_ROUNDS', 20, 5);
  const samples = new Map<string, number[]>(VARIANTS.map(([name]) => [name, []]));
  for (const [, args] of VARIANTS) cpuMs(args); // warm the file cache
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round so that no variant always runs first (or after the same one).
    for (let i = 0; i < VARIANTS.length; i++) {
      const [name, args] = VARIANTS[(i + round) % VARIANTS.length]!;
      samples.get(name)!.push(cpuMs(args));
    }
  }
  return VARIANTS.map(([name]) => ({
    scenario: 'CLI start-up (CPU time of the whole process)',
    name,
    unit: 'ms CPU',
    higherIsBetter: false,
    samples: samples.get(name)!,
    ...(name === BASELINE ? {} : { baseline: BASELINE }),
  }));
}
