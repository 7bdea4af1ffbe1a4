/**
 * Scenario 5: `fs/walk` of the generated ~20,000-file tree (bench/fs-tree.ts, the fs tests' tree
 * without its mode-000 directory) against `find` and against the real codex exec-server 0.169.0's
 * `fs/walk`, all in one run on a warm page cache:
 *   - `find ROOT -mindepth 1` (a child process, its output read through a pipe): the baseline;
 *   - execrelay `fs/walk` on the direct local agent (a separate agent process, loopback WebSocket);
 *   - execrelay `fs/walk` through relay+Noise;
 *   - codex exec-server `fs/walk` on its local WebSocket.
 * Each figure is one whole walk, start to parsed result, with the entries it returned in its notes.
 * (bench/fs-walk.bench.ts, by the fs work, measures walkTree in-process and reports entries/s.)
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ExecClient } from '../src/client/exec-client.js';
import { benchNumber, timeInterleaved, unavailable, withTimeout, type BenchFigure } from './bench-result.js';
import { startCodexServer } from './codex-server.js';
import { startExecrelay } from './fixtures.js';
import { buildTree, countFiles, treeModel } from '../test/support/fs-tree.js';

const RUNS = benchNumber('BENCH_WALK_RUNS', 9, 3);
const BLOCKS = 3;

const FIND = 'find ROOT -mindepth 1';
const DIRECT = 'execrelay fs/walk, direct local agent';
const RELAY = 'execrelay fs/walk via relay+Noise';
const CODEX = 'codex exec-server 0.169.0 fs/walk';

export async function run(): Promise<BenchFigure[]> {
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-walk-'));
  const root = path.join(scratch, 'tree');
  const execrelay = await startExecrelay();
  let codexStop: (() => Promise<void>) | undefined;
  const clients: ExecClient[] = [];
  try {
    await mkdir(root);
    const model = treeModel({ withLocked: false });
    await buildTree(root, model);
    const files = countFiles(model);
    const direct = await execrelay.connectDirect();
    const relay = await execrelay.connectRelay();
    clients.push(direct, relay);
    let codex: ExecClient | string;
    try {
      const server = await withTimeout(startCodexServer(), 600_000, 'codex exec-server');
      codexStop = server.stop;
      codex = await ExecClient.connect(server.url);
      clients.push(codex);
    } catch (error) {
      codex = error instanceof Error ? error.message : String(error);
      console.error(`  codex exec-server unavailable: ${codex.split('\n')[0]}`);
    }
    const entries = new Map<string, number>();
    const walkWith = (name: string, client: ExecClient) => async () => {
      const result = await client.fs.walk(root, { followDirectorySymlinks: false });
      entries.set(name, result.entries.length);
    };
    const variants: Array<[string, () => Promise<void>]> = [
      [
        FIND,
        async () => {
          const { stdout } = await promisify(execFile)('find', [root, '-mindepth', '1'], { maxBuffer: 64 * 1024 * 1024 });
          entries.set(FIND, stdout.split('\n').length - 1);
        },
      ],
      [DIRECT, walkWith(DIRECT, direct)],
      [RELAY, walkWith(RELAY, relay)],
    ];
    if (typeof codex !== 'string') variants.push([CODEX, walkWith(CODEX, codex)]);
    const samples = await timeInterleaved(variants, { runs: RUNS, blocks: BLOCKS, warmup: 1, budgetMs: 60_000 });
    const scenario = `fs/walk of a ${files.toLocaleString('en-US')}-file tree`;
    const figure = (name: string, baseline?: string, alsoCompare?: string[]): BenchFigure => ({
      scenario,
      name,
      unit: 'ms',
      higherIsBetter: false,
      samples: samples.get(name) ?? [],
      ...(baseline ? { baseline } : {}),
      ...(alsoCompare ? { alsoCompare } : {}),
      notes: { entries: entries.get(name) ?? 0 },
    });
    return [
      figure(FIND),
      figure(DIRECT, FIND, [CODEX]),
      figure(RELAY, FIND, [DIRECT]),
      typeof codex !== 'string' ? figure(CODEX, FIND) : unavailable({ scenario, name: CODEX, unit: 'ms', higherIsBetter: false }, codex),
    ];
  } finally {
    for (const client of clients) client.close();
    await Promise.all([execrelay.stop(), codexStop?.()]);
    await rm(scratch, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
