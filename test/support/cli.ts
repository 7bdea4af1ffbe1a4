import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI entry point (`npm test` builds before running vitest). */
export const CLI_PATH = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

function assertBuilt(): void {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run "npm run build" first (npm test does)`);
}

/**
 * `XDG_STATE_HOME` for one spawned process: a fresh temporary directory unless the caller sets one,
 * so that processes never share state under $HOME (a relay's environment bindings, keyed by
 * environment ids that tests reuse with fresh keys).
 */
export function isolatedStateEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  if (env.XDG_STATE_HOME !== undefined) return {};
  return { XDG_STATE_HOME: mkdtempSync(path.join(os.tmpdir(), 'execrelay-state-')) };
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `execrelay ARGS...` to completion. */
export function runCli(
  args: string[],
  options: { input?: string | Buffer; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; onSpawn?: (child: ChildProcessWithoutNullStreams) => void } = {},
): Promise<CliResult> {
  assertBuilt();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args], {
      env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', ...isolatedStateEnv(options.env), ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    options.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`execrelay ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/**
 * Starts a long-running `execrelay ARGS...` and resolves with its first stdout line. `cli`: another
 * build's `cli/main.js` (an installed package's); `uid`/`gid`: run it as another user.
 */
export async function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  options: { cwd?: string; cli?: string; uid?: number; gid?: number } = {},
): Promise<{ child: ChildProcessWithoutNullStreams; firstLine: string; stderr: () => string; stop(): Promise<void> }> {
  if (options.cli === undefined) assertBuilt();
  const child = spawn(process.execPath, [options.cli ?? CLI_PATH, ...args], {
    env: { ...process.env, ...isolatedStateEnv(env), ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    ...(options.uid === undefined ? {} : { uid: options.uid }),
    ...(options.gid === undefined ? {} : { gid: options.gid }),
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const firstLine = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const onData = (d: Buffer) => {
      buffered += d.toString();
      const newline = buffered.indexOf('\n');
      if (newline !== -1) {
        child.stdout.off('data', onData);
        resolve(buffered.slice(0, newline));
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`execrelay ${args.join(' ')} exited with ${code}: ${stderr}`)));
    setTimeout(() => reject(new Error(`no output from execrelay ${args.join(' ')}: ${stderr}`)), 15_000).unref();
  });
  return {
    child,
    firstLine,
    stderr: () => stderr,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
