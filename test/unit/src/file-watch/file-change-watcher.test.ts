import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FileChangeWatcher } from '../../../../src/file-watch/file-change-watcher.js';

const cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function scratch(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'execrelay-watch-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = () => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(check, 10);
    };
    check();
  });
}

async function watched(file: string, options: { pollIntervalMs?: number; onChange?: (missing: boolean) => Promise<void> } = {}) {
  const calls: boolean[] = [];
  const watcher = new FileChangeWatcher(file, await FileChangeWatcher.signatureOf(file), {
    pollIntervalMs: options.pollIntervalMs,
    settleMs: 10,
    onChange: async (missing) => {
      calls.push(missing);
      await options.onChange?.(missing);
    },
  });
  cleanup.push(() => watcher.close());
  return { watcher, calls };
}

describe('FileChangeWatcher', () => {
  it('re-reads once after an in-place write, a rename over the file, and a removal (which it reports)', async () => {
    const file = path.join(await scratch(), 'list');
    await writeFile(file, 'a\n');
    const { calls } = await watched(file);
    await writeFile(file, 'b\n');
    await until(() => calls.length === 1);
    await writeFile(`${file}.new`, 'c\n');
    await rename(`${file}.new`, file);
    await until(() => calls.length === 2);
    await rm(file);
    await until(() => calls.length === 3);
    expect(calls).toEqual([false, false, true]);
  });

  it('notices a change by polling when the directory watch is gone', async () => {
    const file = path.join(await scratch(), 'list');
    await writeFile(file, 'a\n');
    const { watcher, calls } = await watched(file, { pollIntervalMs: 50 });
    (watcher as unknown as { watcher?: { close(): void } }).watcher?.close();
    (watcher as unknown as { watcher?: unknown }).watcher = undefined;
    await writeFile(file, 'longer\n');
    await until(() => calls.length === 1);
    expect(calls).toEqual([false]);
  });

  it('runs re-reads one at a time; requests during one coalesce into a single later one', async () => {
    const file = path.join(await scratch(), 'list');
    await writeFile(file, 'a\n');
    let running = 0;
    let maxRunning = 0;
    const { watcher, calls } = await watched(file, {
      onChange: async () => {
        running += 1;
        maxRunning = Math.max(maxRunning, running);
        await new Promise((resolve) => setTimeout(resolve, 50));
        running -= 1;
      },
    });
    const first = watcher.reread();
    expect(watcher.reread()).toBe(first); // not started yet: it will read the file as it is then
    await until(() => running === 1);
    const second = watcher.reread();
    const third = watcher.reread();
    expect(third).toBe(second);
    expect(second).not.toBe(first);
    await Promise.all([first, second, third]);
    expect(calls).toHaveLength(2);
    expect(maxRunning).toBe(1);
  });

  it('keeps going after a re-read that throws, and stops after close()', async () => {
    const file = path.join(await scratch(), 'list');
    await writeFile(file, 'a\n');
    const { watcher, calls } = await watched(file, {
      onChange: async () => {
        throw new Error('bad file');
      },
    });
    await watcher.reread();
    await writeFile(file, 'b\n');
    await until(() => calls.length === 2);
    watcher.close();
    await writeFile(file, 'cc\n');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(calls).toHaveLength(2);
  });
});
