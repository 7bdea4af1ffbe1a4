import { spawn } from 'node:child_process';
import { expect } from 'vitest';
import { CLI_PATH } from './cli.js';

/**
 * The victim of an availability attack: a real `execrelay exec` process running a numbered-line
 * command through the relay while the attack runs, and a probe that keeps making new connections.
 * The attack tests assert that no line is lost and that new connections keep succeeding, and
 * report the victim's worst stall.
 */

/** What the victim's `execrelay exec` run produced. */
export interface VictimRun {
  /** Complete stdout lines, in order. */
  readonly lines: string[];
  readonly exitCode: number | null;
  readonly stderr: string;
  /** Longest wait between two consecutive lines (ms), the wait for the first line included. */
  readonly worstGapMs: number;
  /** Longest wait between two consecutive lines (ms) once the first arrived: the stall an attack causes, without the process start. */
  readonly worstLineGapMs: number;
}

export interface Victim {
  /** Lines received so far. */
  readonly lines: readonly string[];
  /** Resolves when the exec process has exited. */
  readonly finished: Promise<VictimRun>;
  /** Kills the exec process (a test that fails early). */
  kill(): void;
}

/**
 * Starts `execrelay exec <connectionArgs> -- sh -c '...'` printing `line 1` … `line N`, one every
 * `intervalSeconds`. `connectionArgs` are the relay connection flags (`--relay URL --env ID
 * --agent-key KEY --token-file F ...`); `env` is added to the process environment.
 */
export function startVictim(connectionArgs: string[], options: { lines: number; intervalSeconds: number; env?: NodeJS.ProcessEnv }): Victim {
  const script = `i=0; while [ $i -lt ${options.lines} ]; do i=$((i+1)); echo "line $i"; sleep ${options.intervalSeconds}; done`;
  const child = spawn(process.execPath, [CLI_PATH, 'exec', ...connectionArgs, '--', 'sh', '-c', script], {
    env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let partial = '';
  let stderr = '';
  let last = Date.now();
  let worstGapMs = 0;
  let worstLineGapMs = 0;
  child.stdout.on('data', (data: Buffer) => {
    const parts = (partial + data.toString()).split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      const now = Date.now();
      worstGapMs = Math.max(worstGapMs, now - last);
      if (lines.length > 0) worstLineGapMs = Math.max(worstLineGapMs, now - last);
      last = now;
      lines.push(line);
    }
  });
  child.stderr.on('data', (data: Buffer) => (stderr = (stderr + data.toString()).slice(-20_000)));
  const finished = new Promise<VictimRun>((resolve) => {
    child.once('close', (code) => resolve({ lines, exitCode: code, stderr, worstGapMs, worstLineGapMs }));
  });
  return { lines, finished, kill: () => child.kill('SIGKILL') };
}

/** Every line exactly once and in order, and a clean exit. */
export function expectVictimUnharmed(run: VictimRun, count: number): void {
  expect(run.stderr, 'victim stderr').toBe('');
  expect(run.exitCode).toBe(0);
  const expected = Array.from({ length: count }, (_, i) => `line ${i + 1}`);
  const firstBad = run.lines.findIndex((line, i) => line !== expected[i]);
  expect(firstBad, `first unexpected line at index ${firstBad}: ${run.lines[firstBad]}`).toBe(-1);
  expect(run.lines.length).toBe(count);
}

/** What a connection probe saw. */
export interface ProbeReport {
  readonly attempts: number;
  /** One message per failed attempt. */
  readonly failures: string[];
  /** Slowest successful attempt (ms). */
  readonly worstMs: number;
}

export interface ConnectionProbe {
  /** Stops probing (after the attempt in flight) and reports. */
  stop(): Promise<ProbeReport>;
}

/**
 * Calls `attempt` (a new connection that does something and closes) back to back, `pauseMs`
 * apart, until stopped; each attempt is bounded by `timeoutMs`.
 */
export function startConnectionProbe(attempt: () => Promise<void>, options: { pauseMs: number; timeoutMs: number }): ConnectionProbe {
  let stopped = false;
  let attempts = 0;
  let worstMs = 0;
  const failures: string[] = [];
  const loop = (async () => {
    while (!stopped) {
      attempts += 1;
      const started = Date.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          attempt(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`attempt took over ${options.timeoutMs} ms`)), options.timeoutMs);
          }),
        ]);
        worstMs = Math.max(worstMs, Date.now() - started);
      } catch (error) {
        failures.push((error as Error).message);
      } finally {
        clearTimeout(timer);
      }
      if (!stopped) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return { attempts, failures, worstMs };
    },
  };
}
