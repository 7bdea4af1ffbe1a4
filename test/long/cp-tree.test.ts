import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startCli } from '../support/cli.js';
import { sha256OfFile, temporaryFiles } from '../support/file-fixtures.js';
import { peakRssBytes, runCliMeasured } from '../support/peak-rss.js';

const MiB = 1024 * 1024;
/** What each of client and agent may hold at its peak (VmHWM) while copying (issue #17). */
const RSS_LIMIT = 200 * MiB;
/** Regular files in the tree. */
const TREE_FILES = 2_000;

interface TreeFile {
  relative: string;
  size: number;
  mode: number;
  mtimeMs: number;
}

/**
 * The 2,000-file tree: 20 directories of 100 files (every tenth one nested a level deeper), modes
 * 0600/0640/0755, mtimes in 2020, an empty file, a 300 KiB file (several blocks), names with a space
 * and non-ASCII letters, a symbolic link (not copied) and directories of mode 0750.
 */
function buildTree(root: string): TreeFile[] {
  const files: TreeFile[] = [];
  const modes = [0o600, 0o640, 0o755];
  for (let d = 0; d < 20; d++) {
    const directory = path.join(root, `dir ${d}`, d % 2 === 0 ? 'ünïcode' : 'plain');
    mkdirSync(directory, { recursive: true });
    for (let f = 0; f < 100; f++) {
      const index = d * 100 + f;
      const relative = path.join(`dir ${d}`, d % 2 === 0 ? 'ünïcode' : 'plain', `file-${f}.txt`);
      const size = index === 0 ? 0 : index === 1 ? 300 * 1024 : 100 + (index % 700);
      writeFileSync(path.join(root, relative), randomBytes(size));
      const mode = modes[index % modes.length]!;
      chmodSync(path.join(root, relative), mode);
      const mtimeMs = Date.UTC(2020, 0, 1) + index * 61_001;
      utimesSync(path.join(root, relative), new Date(mtimeMs), new Date(mtimeMs));
      files.push({ relative, size, mode, mtimeMs });
    }
  }
  symlinkSync('dir 0', path.join(root, 'a link'));
  for (let d = 0; d < 20; d++) chmodSync(path.join(root, `dir ${d}`), 0o750);
  return files;
}

async function expectSameTree(from: string, to: string, files: TreeFile[], preserved: boolean): Promise<void> {
  for (const file of files) {
    const copied = statSync(path.join(to, file.relative));
    expect(copied.size, file.relative).toBe(file.size);
    if (preserved) {
      expect(copied.mode & 0o777, file.relative).toBe(file.mode);
      expect(Math.round(copied.mtimeMs), file.relative).toBe(file.mtimeMs);
    }
  }
  for (const file of files.filter((_, index) => index % 97 === 0 || index === 1)) {
    expect(await sha256OfFile(path.join(to, file.relative)), file.relative).toBe(await sha256OfFile(path.join(from, file.relative)));
  }
  const regular = (readdirSync(to, { recursive: true }) as string[]).filter((name) => statSync(path.join(to, name)).isFile());
  expect(regular.sort()).toEqual(files.map((file) => file.relative).sort());
  expect(existsSync(path.join(to, 'a link'))).toBe(false);
  if (preserved) for (let d = 0; d < 20; d++) expect(statSync(path.join(to, `dir ${d}`)).mode & 0o777).toBe(0o750);
}

/**
 * `execrelay cp -r -p` of a 2,000-file tree up to an agent listening directly and back down, with
 * real agent and client processes: contents, modes and mtimes kept, links skipped and said, and
 * neither side over RSS_LIMIT. The rest of cp's behaviour is `test/e2e/cp.test.ts`.
 */
describe('execrelay cp -r -p, a 2,000-file tree', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-cp-tree-'));
  const work = path.join(dir, 'work');
  const local = path.join(dir, 'local');
  let directAgent: Awaited<ReturnType<typeof startCli>>;
  const direct = (): string[] => ['--url', directAgent.firstLine];

  beforeAll(async () => {
    for (const directory of [work, local]) mkdirSync(directory);
    directAgent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0', '--root', work], { EXECRELAY_LOG_LEVEL: 'warn' });
  });
  afterAll(async () => {
    await directAgent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies a 2,000-file tree up and back down directly with -r -p: contents, modes and mtimes kept, links skipped and said', async () => {
    const tree = path.join(local, 'tree');
    const files = buildTree(tree);
    expect(files).toHaveLength(TREE_FILES);
    const up = await runCliMeasured(['cp', ...direct(), '-r', '-p', tree, `:${work}`], { timeoutMs: 300_000 });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toBe(`execrelay cp: skipped symbolic link ${path.join(tree, 'a link')} (only regular files and directories are copied)\n`);
    await expectSameTree(tree, path.join(work, 'tree'), files, true);
    const back = path.join(local, 'tree-back');
    const down = await runCliMeasured(['cp', ...direct(), '-r', '-p', `:${path.join(work, 'tree')}`, back], { timeoutMs: 300_000 });
    expect(down).toMatchObject({ code: 0, stdout: '', stderr: '' });
    await expectSameTree(tree, back, files, true);
    const agentPeak = peakRssBytes(directAgent.child.pid!)!;
    console.log(`cp 2,000 files directly: ${JSON.stringify({ upMs: up.wallMs, downMs: down.wallMs, upClientRssMiB: up.peakRssBytes / MiB, downClientRssMiB: down.peakRssBytes / MiB, agentRssMiB: agentPeak / MiB })}`);
    expect(up.peakRssBytes).toBeLessThan(RSS_LIMIT);
    expect(down.peakRssBytes).toBeLessThan(RSS_LIMIT);
    expect(agentPeak).toBeLessThan(RSS_LIMIT);
    // Without -p the copies get the receiving side's defaults; the tree is merged into an existing one.
    const plain = await runCli(['cp', ...direct(), '-r', `:${path.join(work, 'tree')}`, back], { timeoutMs: 300_000 });
    expect(plain).toMatchObject({ code: 0, stderr: '' });
    expect(statSync(path.join(back, 'tree', files[2]!.relative)).mode & 0o777).toBe(0o644);
    expect(temporaryFiles(work)).toEqual([]);
  }, 600_000);
});
