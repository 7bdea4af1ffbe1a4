import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built soak (bench/soak.ts): tests run it as a process, as `node dist/bench/soak.js` is run by hand. */
const SOAK_PATH = fileURLToPath(new URL('../../dist/bench/soak.js', import.meta.url));

/** What the soak prints on stdout (the fields this test reads). */
interface SoakReport {
  options: { streams: number; executors: number; durationMs: number };
  commandsCompleted: number;
  commandsFailed: number;
  bytesVerified: number;
  elapsedMs: number;
  throughputMiBps: number;
  faults: Record<string, number>;
  clientReconnects: number;
  agentRegistrations: number;
  streamsActive: number;
  failures: string[];
  relayRssKiB: { start: number; max: number; end: number };
}

/** Runs the soak with the SOAK_* environment; its progress goes to stderr, its report to stdout. */
function runSoakProcess(): Promise<SoakReport> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SOAK_PATH], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000);
      if (process.env.SOAK_VERBOSE === '1') process.stderr.write(d);
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      try {
        resolve(JSON.parse(stdout) as SoakReport);
      } catch {
        reject(new Error(`soak exited with ${code} without a report; stderr: ${stderr}`));
      }
    });
  });
}

/** A bound on the run for the test's timeout only: the soak itself reads SOAK_* (and prints what it ran). */
const soakSecondsBound = Number(process.env.SOAK_SECONDS ?? (process.env.SOAK_FULL === '1' ? 60 : 10));

/**
 * The soak with small parameters by default (40 streams over 5 executors for 10 s); SOAK_FULL=1
 * runs 200 streams over 20 executors for 60 s. Random link faults throughout; every command's
 * output must match its checksum and the relay's RSS stays bounded.
 */
describe('soak', () => {
  it(
    'many streams over several executors (SOAK_* sizes) under random link faults lose nothing',
    async () => {
      const report = await runSoakProcess();
      console.log(
        `soak: ${report.options.streams} streams over ${report.options.executors} executors: ${report.commandsCompleted} commands (${(report.bytesVerified / 2 ** 20).toFixed(1)} MiB) verified in ${(report.elapsedMs / 1000).toFixed(1)} s ` +
          `= ${report.throughputMiBps} MiB/s; faults ${JSON.stringify(report.faults)}; ${report.clientReconnects} client reconnects, ` +
          `${report.agentRegistrations} agent registrations; relay RSS start ${(report.relayRssKiB.start / 1024).toFixed(0)} MiB, ` +
          `max ${(report.relayRssKiB.max / 1024).toFixed(0)} MiB, end ${(report.relayRssKiB.end / 1024).toFixed(0)} MiB`,
      );
      expect(report.failures).toEqual([]);
      expect(report.commandsFailed).toBe(0);
      // Every stream got work through, and faults really happened.
      expect(report.streamsActive).toBe(report.options.streams);
      expect(Object.values(report.faults).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(5);
      // Bounded: the relay holds per-socket queues of at most a few MiB, not the traffic.
      expect(report.relayRssKiB.max).toBeLessThan(512 * 1024);
    },
    soakSecondsBound * 1000 + 180_000,
  );
});
