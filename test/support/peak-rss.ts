import { readFileSync } from 'node:fs';
import { runCli, type CliResult } from './cli.js';

/** A live process's peak resident set so far (VmHWM of /proc/PID/status), in bytes; undefined once it is gone. */
export function peakRssBytes(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `execrelay ARGS...` to completion with runCli, sampling its VmHWM every 20 ms while it runs
 * (VmHWM only grows, so the last sample is its peak up to 20 ms before it exited), and reports it
 * with the wall time.
 */
export async function runCliMeasured(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<CliResult & { peakRssBytes: number; wallMs: number }> {
  const started = Date.now();
  let peak = 0;
  let sampler: NodeJS.Timeout | undefined;
  const sample = (pid: number | undefined): void => {
    const now = pid === undefined ? undefined : peakRssBytes(pid);
    if (now !== undefined && now > peak) peak = now;
  };
  try {
    const result = await runCli(args, {
      ...options,
      timeoutMs: options.timeoutMs ?? 120_000,
      onSpawn: (child) => {
        sampler = setInterval(() => sample(child.pid), 20);
      },
    });
    return { ...result, peakRssBytes: peak, wallMs: Date.now() - started };
  } finally {
    clearInterval(sampler);
  }
}
