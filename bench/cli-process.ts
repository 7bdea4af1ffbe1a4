import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI (bench/ is compiled to dist/bench/). */
export const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

export interface RunningProcess {
  child: ChildProcess;
  firstLine: string;
  stop(): Promise<void>;
}

/** Starts `node ARGS...` and resolves with its first stdout line (a URL or an identity). */
export async function startProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningProcess> {
  const child = spawn(process.execPath, args, { env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const firstLine = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`no output from ${args.join(' ')}: ${stderr}`)), 20_000);
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
  return {
    child,
    firstLine,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}

export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunningProcess> {
  return startProcess([CLI, ...args], env);
}
