/**
 * `npm run bench`: runs every benchmark module under bench/ (each exports `run()` returning
 * BenchFigure[]), prints a table with each figure's median, p95, min/max and its ratio against the
 * baseline measured in the same run, and writes bench/results.json with the machine's facts.
 */
import os from 'node:os';
import { readdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { QUICK, summarize, type BenchFigure, type SummarizedFigure } from './bench-result.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);

function format(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function ratioText(f: SummarizedFigure): string {
  if (f.samples.length === 0) return `(not measured: ${String(f.notes?.unavailable ?? 'unavailable').split('\n')[0]!.slice(0, 80)})`;
  const parts: string[] = [];
  if (f.ratio !== undefined) parts.push(`${format(f.ratio)}x vs ${f.baseline}`);
  else if (f.baseline === undefined) parts.push(baselines.has(`${f.scenario}\u0000${f.name}`) ? '(baseline)' : '-');
  for (const [name, ratio] of Object.entries(f.ratios ?? {})) parts.push(`${format(ratio)}x vs ${name}`);
  return parts.join('; ');
}

function notesText(f: SummarizedFigure): string {
  return Object.entries(f.notes ?? {})
    .filter(([k]) => k !== 'unavailable')
    .map(([k, v]) => `${k}=${typeof v === 'number' ? format(v) : v}`)
    .join(' ');
}

/** `scenario NUL name` of every figure some other figure is compared with. */
let baselines = new Set<string>();

function printTable(figures: SummarizedFigure[]): void {
  baselines = new Set(figures.flatMap((f) => [f.baseline, ...(f.alsoCompare ?? [])].filter((b): b is string => b !== undefined).map((b) => `${f.scenario}\u0000${b}`)));
  const rows = figures.map((f) => [
    f.scenario,
    f.name,
    f.unit,
    format(f.median),
    format(f.p95),
    format(f.p99),
    `${format(f.min)}..${format(f.max)}`,
    String(f.samples.length),
    ratioText(f),
    notesText(f),
  ]);
  const header = ['scenario', 'figure', 'unit', 'median', 'p95', 'p99', 'min..max', 'n', 'ratio', 'notes'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

/** The older result shape some bench modules return (one value per figure, details beside it). */
interface SingleValueResult {
  name: string;
  value: number;
  unit: string;
  details?: Record<string, number | string>;
}

/** Accepts BenchFigure[] or the single-value shape (one figure per value, the "(baseline)" one as baseline). */
function normalize(file: string, results: Array<BenchFigure | SingleValueResult>): BenchFigure[] {
  const scenario = `${file.replace(/\.bench\.js$/, '')} (single measured value per figure)`;
  const base = results.find((r): r is SingleValueResult => 'value' in r && r.name.includes('(baseline)'));
  return results.map((r) =>
    'samples' in r
      ? r
      : {
          scenario,
          name: r.name,
          unit: r.unit,
          higherIsBetter: /\/s$/.test(r.unit),
          samples: [r.value],
          ...(base && base !== r ? { baseline: base.name } : {}),
          ...(r.details ? { notes: r.details } : {}),
        },
  );
}

const modules = (await readdir(here)).filter((f) => f.endsWith('.bench.js')).sort();
const figures: BenchFigure[] = [];
const suiteStarted = Date.now();
for (const file of modules) {
  if (only.length > 0 && !only.some((o) => file.includes(o))) continue;
  const started = Date.now();
  console.error(`running ${file} ...`);
  const mod = (await import(path.join(here, file))) as { run: () => Promise<Array<BenchFigure | SingleValueResult>> };
  try {
    figures.push(...normalize(file, await mod.run()));
  } catch (error) {
    // One failing scenario does not lose the others' figures; the failure is in the table.
    console.error(`  ${file} FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    figures.push({ scenario: file, name: 'FAILED', unit: '-', higherIsBetter: false, samples: [], notes: { unavailable: String(error instanceof Error ? error.message : error) } });
  }
  console.error(`  ${file} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
console.error(`suite done in ${((Date.now() - suiteStarted) / 1000).toFixed(1)} s${QUICK ? ' (BENCH_QUICK)' : ''}`);
const summarized = summarize(figures);
printTable(summarized);
const results = {
  date: new Date().toISOString(),
  mode: QUICK ? 'quick' : 'full',
  durationSeconds: Math.round((Date.now() - suiteStarted) / 1000),
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
  figures: summarized,
};
const out = path.resolve(here, '..', '..', 'bench', 'results.json');
await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
console.error(`wrote ${out}`);
