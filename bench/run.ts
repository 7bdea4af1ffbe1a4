/**
 * `npm run bench`: runs every benchmark module under bench/ (each exports `run()` returning
 * BenchFigure[]), prints a table with each figure's median, p95, min/max and its ratio against the
 * baseline measured in the same run, and writes bench/results.json with the machine's facts.
 */
import os from 'node:os';
import { readdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { summarize, type BenchFigure, type SummarizedFigure } from './bench-result.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);

function format(value: number): string {
  if (!Number.isFinite(value)) return '-';
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

function printTable(figures: SummarizedFigure[]): void {
  const rows = figures.map((f) => [
    f.scenario,
    f.name,
    f.unit,
    format(f.median),
    format(f.p95),
    `${format(f.min)}..${format(f.max)}`,
    String(f.samples.length),
    f.ratio === undefined ? '(baseline)' : `${format(f.ratio)}x vs ${f.baseline}`,
  ]);
  const header = ['scenario', 'figure', 'unit', 'median', 'p95', 'min..max', 'n', 'ratio'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
}

const modules = (await readdir(here)).filter((f) => f.endsWith('.bench.js')).sort();
const figures: BenchFigure[] = [];
for (const file of modules) {
  if (only.length > 0 && !only.some((o) => file.includes(o))) continue;
  const started = Date.now();
  console.error(`running ${file} ...`);
  const mod = (await import(path.join(here, file))) as { run: () => Promise<BenchFigure[]> };
  figures.push(...(await mod.run()));
  console.error(`  ${file} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
const summarized = summarize(figures);
printTable(summarized);
const results = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
  figures: summarized,
};
const out = path.resolve(here, '..', '..', 'bench', 'results.json');
await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
console.error(`wrote ${out}`);
