import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256OfFile, temporaryFiles, writeRandomFile } from '../support/file-fixtures.js';
import { startNamedRelayEnvironment, type NamedRelayEnvironment } from '../support/named-relay-environment.js';
import { peakRssBytes, runCliMeasured } from '../support/peak-rss.js';

const MiB = 1024 * 1024;
/** What each of client and agent may hold at its peak (VmHWM) while copying (issue #17). */
const RSS_LIMIT = 200 * MiB;

/**
 * `execrelay cp` of a 1 GiB file up to a named environment behind a relay and back down, with real
 * relay, agent and client processes: every byte arrives (SHA-256), and neither the client nor the
 * agent holds more than RSS_LIMIT at its peak. The rest of cp's behaviour is `test/e2e/cp.test.ts`.
 */
describe('execrelay cp, 1 GiB through the relay', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-cp-1gib-'));
  const work = path.join(dir, 'work');
  const local = path.join(dir, 'local');
  let named: NamedRelayEnvironment;

  beforeAll(async () => {
    for (const directory of [work, local]) mkdirSync(directory);
    named = await startNamedRelayEnvironment(dir, 'box');
  });
  afterAll(async () => {
    await named?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies a 1 GiB file up and back down: SHA-256 equal, client and agent each under 200 MiB RSS', async () => {
    const big = path.join(local, 'big.bin');
    await writeRandomFile(big, 1024 * MiB);
    const up = await runCliMeasured(['cp', big, `box:${work}/`], { env: named.env, timeoutMs: 600_000 });
    expect(up).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const back = path.join(local, 'big.back');
    const down = await runCliMeasured(['cp', `box:${path.join(work, 'big.bin')}`, back], { env: named.env, timeoutMs: 600_000 });
    expect(down).toMatchObject({ code: 0, stdout: '', stderr: '' });
    const agentPeak = peakRssBytes(named.agent.child.pid!)!;
    const figures = { upMs: up.wallMs, downMs: down.wallMs, upClientRssMiB: up.peakRssBytes / MiB, downClientRssMiB: down.peakRssBytes / MiB, agentRssMiB: agentPeak / MiB };
    console.log(`cp 1 GiB through the relay: ${JSON.stringify(figures)}`);
    const expected = await sha256OfFile(big);
    expect(await sha256OfFile(path.join(work, 'big.bin'))).toBe(expected);
    expect(await sha256OfFile(back)).toBe(expected);
    expect(up.peakRssBytes).toBeGreaterThan(0);
    expect(up.peakRssBytes).toBeLessThan(RSS_LIMIT);
    expect(down.peakRssBytes).toBeLessThan(RSS_LIMIT);
    expect(agentPeak).toBeLessThan(RSS_LIMIT);
    expect(temporaryFiles(work)).toEqual([]);
    expect(temporaryFiles(local)).toEqual([]);
  }, 900_000);
});
