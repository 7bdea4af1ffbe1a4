/**
 * Prints bench/results.json (written by `npm run bench`) as a Markdown table, for docs/performance.md:
 * `node dist/bench/results-markdown.js [results.json]`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SummarizedFigure } from './bench-result.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] ?? path.resolve(here, '..', '..', 'bench', 'results.json');
const results = JSON.parse(await readFile(file, 'utf8')) as { date: string; machine: Record<string, unknown>; figures: SummarizedFigure[] };

function format(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString('en-US');
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

const rows: string[] = ['| scenario | figure | unit | median | p95 | p99 | n | ratios (same run) | notes |', '|---|---|---|--:|--:|--:|--:|---|---|'];
let lastScenario = '';
for (const f of results.figures) {
  const ratios: string[] = [];
  if (f.samples.length === 0) ratios.push(`not measured: ${String(f.notes?.unavailable ?? '').split('\n')[0]}`);
  if (f.ratio !== undefined && f.ratio !== null) ratios.push(`**${format(f.ratio)}×** ${f.baseline}`);
  for (const [name, ratio] of Object.entries(f.ratios ?? {})) ratios.push(`${format(ratio)}× ${name}`);
  const notes = Object.entries(f.notes ?? {})
    .filter(([k]) => k !== 'unavailable')
    .map(([k, v]) => `${k} ${typeof v === 'number' ? format(v) : v}`)
    .join(', ');
  const scenario = f.scenario === lastScenario ? '' : f.scenario;
  lastScenario = f.scenario;
  const cell = (s: string) => s.replaceAll('|', '\\|');
  rows.push(`| ${cell(scenario)} | ${cell(f.name)} | ${f.unit} | ${format(f.median)} | ${format(f.p95)} | ${format(f.p99)} | ${f.samples.length} | ${cell(ratios.join('; '))} | ${cell(notes)} |`);
}
console.log(`Run of ${results.date} (${JSON.stringify(results.machine)}):\n`);
console.log(rows.join('\n'));
