import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { childPids, processName, statFields } from '../test/support/process-table.js';

/** The built CLI (bench/ is compiled to dist/bench/). */
export const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface RunningProcess {
  child: ChildProcess;
  firstLine: string;
  stop(): Promise<void>;
}

/**
 * Starts `node ARGS...` and resolves with its first stdout line (a URL or an identity). `onSpawn`
 * sees the child at once (to track it); a child that exits or prints nothing within 20 s is killed.
 */
export async function startProcess(args: string[], env: NodeJS.ProcessEnv = {}, onSpawn?: (child: ChildProcess) => void): Promise<RunningProcess> {
  const child = spawn(process.execPath, args, { env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  onSpawn?.(child);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const firstLine = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // a process that never started properly is not left running
      reject(new Error(`no output from ${args.join(' ')}: ${stderr}`));
    }, 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const newline = buffered.indexOf('\n');
      if (newline !== -1) {
        clearTimeout(timer);
        resolve(buffered.slice(0, newline));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${code}: ${stderr}`));
    });
  });
  return { child, firstLine, stop: () => stopChild(child) };
}

/** Stops a child: SIGTERM, then SIGKILL after 3 s. */
export function stopChild(child: ChildProcess): Promise<void> {
  return new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    // Not unref'd: a child that ignores SIGTERM is killed even if nothing else keeps us alive.
    const kill = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Starts the built CLI. `BENCH_NODE_ARGS` (space-separated) goes in front, e.g.
 * `BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"` profiles every relay and agent process
 * of a bench run (each writes its profile when it exits; read them with profile-summary.js).
 */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, onSpawn?: (child: ChildProcess) => void): Promise<RunningProcess> {
  const nodeArgs = (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  return startProcess([...nodeArgs, CLI, ...args], env, onSpawn);
}

/** Runs `execrelay keygen --out FILE` and resolves with the printed public identity. */
export function keygen(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'keygen', '--out', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`keygen exited with ${code}`))));
  });
}

/** Resident set size of a process, in bytes (Linux /proc). */
export async function rssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/**
 * An agent's pid and its process spawner's (the node child that forks the agent's commands, see
 * executor-agent/process-spawner.ts): the CPU of both is the agent's; the commands are not counted.
 */
export function agentPids(pid: number): number[] {
  return [pid, ...childPids(pid).filter((child) => processName(child) === 'node')];
}

/** CPU time (user + system) a process has used so far, in milliseconds (Linux /proc, 100 Hz ticks). */
export async function cpuMs(pid: number): Promise<number> {
  const fields = statFields(pid);
  if (!fields) throw new Error(`no process ${pid} in /proc`);
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** CPU milliseconds of these processes so far, summed (a pid that is gone counts 0). */
export async function cpuMsOf(pids: readonly number[]): Promise<number> {
  let total = 0;
  for (const pid of pids) total += await cpuMs(pid).catch(() => 0);
  return total;
}
