import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { CLI_PATH, isolatedStateEnv, type CliResult } from './cli.js';

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
 * Runs `execrelay ARGS...` to completion like runCli, sampling its VmHWM every 20 ms while it runs
 * (VmHWM only grows, so the last sample is its peak up to 20 ms before it exited), and reports it
 * with the wall time.
 */
export function runCliMeasured(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<CliResult & { peakRssBytes: number; wallMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', ...isolatedStateEnv(options.env), ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    let peak = 0;
    const sample = (): void => {
      const now = child.pid === undefined ? undefined : peakRssBytes(child.pid);
      if (now !== undefined && now > peak) peak = now;
    };
    const sampler = setInterval(sample, 20);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`execrelay ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(sampler);
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, peakRssBytes: peak, wallMs: Date.now() - started });
    });
  });
}
