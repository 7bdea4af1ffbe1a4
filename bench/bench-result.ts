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
  /** Free-form facts worth keeping beside the figure (e.g. process/read count). */
  notes?: Record<string, number | string>;
}

export interface SummarizedFigure extends BenchFigure {
  median: number;
  p95: number;
  min: number;
  max: number;
  /** median / baseline median, when there is a baseline. */
  ratio?: number;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

export function summarize(figures: readonly BenchFigure[]): SummarizedFigure[] {
  const out: SummarizedFigure[] = figures.map((f) => {
    const sorted = [...f.samples].sort((a, b) => a - b);
    return { ...f, median: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
  });
  for (const figure of out) {
    if (!figure.baseline) continue;
    const base = out.find((b) => b.scenario === figure.scenario && b.name === figure.baseline);
    if (base) figure.ratio = figure.median / base.median;
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
