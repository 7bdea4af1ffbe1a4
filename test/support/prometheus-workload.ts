/**
 * Real work for the telemetry tests: processes (success, failure, signaled), reads, fs calls and
 * error answers, each carrying unique markers in its ids, commands, paths and environment; plus a
 * parser for the Prometheus text exposition.
 */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { expect } from 'vitest';
import type { ExecClient } from '../../src/client/exec-client.js';

/** A string no metric may ever contain. */
export function marker(kind: string): string {
  return `mk${kind}${randomUUID().replace(/-/g, '')}`;
}

async function expectRpcError(promise: Promise<unknown>, code: number): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code });
}

/**
 * One round of every kind of request the tests label, with fresh markers, through `client`.
 * Returns the markers used and the number of processes started.
 */
export async function runWorkloadRound(client: ExecClient, scratchDir: string): Promise<{ markers: string[]; processes: number }> {
  const markers: string[] = [];
  const m = (kind: string) => {
    const value = marker(kind);
    markers.push(value);
    return value;
  };
  const dir = path.join(scratchDir, m('dir'));
  const file = path.join(dir, `${m('file')}.txt`);
  const fileContent = m('content');

  // fs: every call answered ok, plus not_found and invalid_params answers.
  await client.fs.createDirectory(dir, { recursive: true });
  await client.fs.writeFile(file, fileContent);
  expect((await client.fs.readFile(file)).toString()).toBe(fileContent);
  await client.fs.getMetadata(file);
  await client.fs.readDirectory(dir);
  await client.fs.walk(dir);
  const copy = path.join(dir, `${m('copy')}.txt`);
  await client.fs.copy(file, copy);
  await client.fs.remove(copy);
  await expectRpcError(client.fs.readFile(path.join(dir, m('missing'))), -32004);

  // Processes: success (marker in argv, env and cwd), failure, signaled.
  const envName = `E_${m('envname')}`;
  const envValue = m('envvalue');
  const okId = m('pid');
  const argvMarker = m('argv');
  const ok = await client.exec(['sh', '-c', `echo ${argvMarker} "$${envName}"`], {
    processId: okId,
    cwd: dir,
    env: { [envName]: envValue, PATH: process.env.PATH ?? '/usr/bin:/bin' },
  });
  const okDone = await ok.completion;
  expect(okDone.exitCode).toBe(0);
  const failed = await client.exec(['sh', '-c', `exit 3 # ${m('argv')}`], { processId: m('pid'), cwd: dir });
  expect((await failed.completion).exitCode).toBe(3);
  const sleeper = await client.exec(['sleep', '30'], { processId: m('pid'), cwd: dir });
  await sleeper.terminate();
  expect((await sleeper.completion).exitCode).toBeGreaterThan(128);

  // process/read ok, and errors: not_found, invalid_params, an unknown method.
  await client.read(okId, 0);
  await expectRpcError(client.read(m('pid'), 0), -32004);
  await expectRpcError(client.request('process/start', { processId: m('pid') }), -32602);
  await expectRpcError(client.request(`${m('method')}/call`, { path: file }), -32601);
  return { markers, processes: 3 };
}

export { parseExposition, sumOf, type Sample } from './prometheus-exposition.js';

export async function scrape(url: string): Promise<string> {
  const response = await fetch(url);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toContain('text/plain');
  return response.text();
}

