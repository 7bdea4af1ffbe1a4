import { describe, expect, it } from 'vitest';
import { runSoak, soakOptionsFromEnv } from '../bench/soak.js';

/**
 * The soak (bench/soak.ts) with small parameters by default (40 streams over 5 executors for
 * 10 s); SOAK_FULL=1 runs 200 streams over 20 executors for 60 s. Random link faults throughout;
 * every command's output must match its checksum and the relay's RSS stays bounded.
 */
describe('soak', () => {
  const options = soakOptionsFromEnv();
  it(
    `${options.streams} streams over ${options.executors} executors for ${options.durationMs / 1000} s under random link faults lose nothing`,
    async () => {
      const report = await runSoak({ ...options, verbose: process.env.SOAK_VERBOSE === '1' });
      console.log(
        `soak: ${report.commandsCompleted} commands (${(report.bytesVerified / 2 ** 20).toFixed(1)} MiB) verified in ${(report.elapsedMs / 1000).toFixed(1)} s ` +
          `= ${report.throughputMiBps} MiB/s; faults ${JSON.stringify(report.faults)}; ${report.clientReconnects} client reconnects, ` +
          `${report.agentRegistrations} agent registrations; relay RSS start ${(report.relayRssKiB.start / 1024).toFixed(0)} MiB, ` +
          `max ${(report.relayRssKiB.max / 1024).toFixed(0)} MiB, end ${(report.relayRssKiB.end / 1024).toFixed(0)} MiB`,
      );
      expect(report.failures).toEqual([]);
      expect(report.commandsFailed).toBe(0);
      // Every stream got work through, and faults really happened.
      expect(report.streamsActive).toBe(options.streams);
      expect(Object.values(report.faults).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(5);
      // Bounded: the relay holds per-socket queues of at most a few MiB, not the traffic.
      expect(report.relayRssKiB.max).toBeLessThan(512 * 1024);
    },
    options.durationMs + 180_000,
  );
});
