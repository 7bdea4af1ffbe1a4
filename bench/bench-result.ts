/** One measured figure of a benchmark, with its samples and (optionally) its baseline from the same run. */
export interface BenchFigure {
  /** Scenario group, e.g. "one-shot latency". */
  scenario: string;
  /** What was measured, e.g. "execrelay via relay+Noise". */
  name: string;
  unit: string;
  /** Whether a larger number is better (throughput) or worse (latency). */
  higherIsBetter: boolean;
  samples: number[];
  /** `name` of the figure in the same scenario this one is compared with. */
  baseline?: string;
  /** Which statistic the ratios compare (default the median). */
  ratioOf?: 'median' | 'p99';
  /** Further figures of the same scenario this one is compared with (each gets a ratio too). */
  alsoCompare?: string[];
  /** Free-form facts worth keeping beside the figure (e.g. process/read count). */
  notes?: Record<string, number | string>;
}

export interface SummarizedFigure extends BenchFigure {
  median: number;
  p95: number;
  p99: number;
  min: number;
  max: number;
  /** median / baseline median (or p99 / p99 with `ratioOf: 'p99'`), when there is a baseline. */
  ratio?: number;
  /** median / median of each `alsoCompare` figure that was measured. */
  ratios?: Record<string, number>;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

export function summarize(figures: readonly BenchFigure[]): SummarizedFigure[] {
  const out: SummarizedFigure[] = figures.map((f) => {
    const sorted = [...f.samples].sort((a, b) => a - b);
    return { ...f, median: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), p99: quantile(sorted, 0.99), min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
  });
  for (const figure of out) {
    const stat = figure.ratioOf ?? 'median';
    const statOf = (name: string): number | undefined => {
      const base = out.find((b) => b.scenario === figure.scenario && b.name === name);
      return base && base.samples.length > 0 ? base[stat] : undefined;
    };
    if (figure.baseline) {
      const base = statOf(figure.baseline);
      if (base !== undefined && figure.samples.length > 0) figure.ratio = figure[stat] / base;
    }
    for (const other of figure.alsoCompare ?? []) {
      const base = statOf(other);
      if (base !== undefined && figure.samples.length > 0) (figure.ratios ??= {})[other] = figure[stat] / base;
    }
  }
  return out;
}

/** Times `fn` `count` times (after `warmup` unmeasured runs); returns milliseconds per run. */
export async function timeRuns(count: number, warmup: number, fn: () => Promise<void>, budgetMs = 60_000): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  const deadline = Date.now() + budgetMs;
  for (let i = 0; i < count && Date.now() < deadline; i++) {
    const start = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return samples;
}

/** `BENCH_QUICK=1`: small sizes and few repetitions (a smoke run of every scenario in about a minute). */
export const QUICK = process.env.BENCH_QUICK === '1' || process.env.BENCH_QUICK === 'true';

/** A number from the environment, or `full` / `quick` by mode. */
export function benchNumber(name: string, full: number, quick: number): number {
  const raw = process.env[name];
  if (raw !== undefined && raw !== '' && Number.isFinite(Number(raw))) return Number(raw);
  return QUICK ? quick : full;
}

/** Median of samples (NaN when empty). */
export function median(samples: readonly number[]): number {
  return quantile([...samples].sort((a, b) => a - b), 0.5);
}

/** Rejects with `what` timed out after `ms` unless `promise` settles first. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A figure for a baseline that could not be measured here (tool missing, install failed): no samples, a note. */
export function unavailable(figure: Omit<BenchFigure, 'samples' | 'notes'>, reason: string): BenchFigure {
  return { ...figure, samples: [], notes: { unavailable: reason.slice(0, 300) } };
}

/**
 * Starts an optional baseline (codex, sshd): its value, or the reason it is unavailable (logged),
 * so the rest of the suite still runs and the figure is reported as not measured.
 */
export async function optionalBaseline<T>(what: string, start: () => Promise<T>): Promise<T | string> {
  try {
    return await withTimeout(start(), 600_000, what);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(`  ${what} unavailable: ${message.split('\n')[0]}`);
    return message;
  }
}

/**
 * Times each named variant `runs` times in total, interleaved in `blocks` so that drift on a shared
 * machine hits every variant alike; the first block also runs `warmup` unmeasured calls of each.
 */
export async function timeInterleaved(
  variants: ReadonlyArray<readonly [string, () => Promise<void>]>,
  options: { runs: number; blocks: number; warmup: number; budgetMs: number },
): Promise<Map<string, number[]>> {
  const samples = new Map<string, number[]>(variants.map(([name]) => [name, []]));
  for (let block = 0; block < options.blocks; block++) {
    for (const [name, fn] of variants) {
      samples.get(name)!.push(...(await timeRuns(Math.ceil(options.runs / options.blocks), block === 0 ? options.warmup : 0, fn, options.budgetMs)));
    }
  }
  return samples;
}
