/**
 * fs/walk throughput on the generated 20,000-file tree (bench/fs-tree.ts), against `find` on the
 * same tree in the same run:
 *   - `find ROOT` (a child process, its output read through a pipe),
 *   - `fs/walk` in the agent process alone (walkTree, no RPC),
 *   - `ExecClient.fs.walk` against a real agent over loopback WebSocket (the number that matters).
 * Each figure is the median of several runs after a warm-up (the page cache is warm for all).
 *
 * Run directly: `npm run build && node dist/bench/fs-walk.bench.js`.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ExecutorAgent } from '../executor-agent/executor-agent.js';
import { walkTree } from '../executor-agent/fs-walk.js';
import { RootConfinement } from '../executor-agent/root-confinement.js';
import { ExecClient } from '../src/client/exec-client.js';
import { createLogger } from '../src/logging/logger.js';
import { FS_LIMITS } from '../src/protocol/fs.js';
import { buildTree, countFiles, treeModel } from '../test/support/fs-tree.js';

/** One reported figure. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** Supporting numbers (entry counts, milliseconds, ratios). */
  details?: Record<string, number | string>;
}

const RUNS = 7;
const FULL = {
  maxDepth: FS_LIMITS.maxWalkDepth,
  maxDirectories: FS_LIMITS.maxWalkDirectories,
  maxEntries: FS_LIMITS.maxWalkEntries,
  followDirectorySymlinks: false,
};

async function median(runs: number, once: () => Promise<number>): Promise<{ ms: number; entries: number }> {
  let entries = await once(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    entries = await once();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { ms: times[Math.floor(times.length / 2)]!, entries };
}

export async function run(): Promise<BenchResult[]> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-walk-'));
  const root = path.join(scratch, 'tree');
  const agent = new ExecutorAgent({}, createLogger('bench', 'silent'));
  const listener = await agent.listenWebSocket('ws://127.0.0.1:0');
  let client: ExecClient | undefined;
  try {
    await mkdir(root);
    const model = treeModel({ withLocked: false });
    await buildTree(root, model);
    client = await ExecClient.connect(listener.url);
    const connected = client;

    const find = await median(RUNS, async () => {
      const { stdout } = await promisify(execFile)('find', [root, '-mindepth', '1'], { maxBuffer: 64 * 1024 * 1024 });
      return stdout.split('\n').length - 1;
    });
    const inProcess = await median(RUNS, async () => (await walkTree(root, FULL, { confinement: new RootConfinement([]) })).entries.length);
    const overRpc = await median(RUNS, async () => (await connected.fs.walk(root, FULL)).entries.length);

    const perSecond = (m: { ms: number; entries: number }) => (m.entries / m.ms) * 1000;
    const findRate = perSecond(find);
    const files = countFiles(model);
    const round = (n: number) => Math.round(n * 100) / 100;
    return [
      {
        name: 'fs-walk: find (baseline)',
        value: Math.round(findRate),
        unit: 'entries/s',
        details: { entries: find.entries, medianMs: round(find.ms), files },
      },
      {
        name: 'fs-walk: walkTree in-process',
        value: Math.round(perSecond(inProcess)),
        unit: 'entries/s',
        details: { entries: inProcess.entries, medianMs: round(inProcess.ms), ratioVsFind: round(perSecond(inProcess) / findRate) },
      },
      {
        name: 'fs-walk: ExecClient.fs.walk over loopback WebSocket',
        value: Math.round(perSecond(overRpc)),
        unit: 'entries/s',
        details: { entries: overRpc.entries, medianMs: round(overRpc.ms), ratioVsFind: round(perSecond(overRpc) / findRate) },
      },
    ];
  } finally {
    client?.close();
    agent.shutdown();
    await listener.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await run();
  for (const result of results) {
    const details = Object.entries(result.details ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    process.stdout.write(`${result.name}: ${result.value} ${result.unit}  ${details}\n`);
  }
}
