import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import os from 'node:os';
import { CLI_PATH } from './cli.js';

/** uid and gid of `nobody`. */
const NOBODY = 65534;

export interface UnprivilegedAgent {
  url: string;
  child: ChildProcessWithoutNullStreams;
  /** SIGTERM, resolved once the agent has exited. */
  stop(): Promise<void>;
}

/**
 * The built CLI agent listening on loopback, as `nobody` when the tests run as root (so that file
 * permissions apply to it); its home and state directory are the system's temporary directory,
 * which `nobody` may write.
 */
export async function startUnprivilegedAgent(): Promise<UnprivilegedAgent> {
  const asNobody = process.getuid?.() === 0;
  const child = spawn(process.execPath, [CLI_PATH, 'agent', '--listen', 'ws://127.0.0.1:0'], {
    env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', HOME: os.tmpdir(), XDG_STATE_HOME: os.tmpdir() },
    stdio: ['pipe', 'pipe', 'pipe'],
    ...(asNobody ? { uid: NOBODY, gid: NOBODY } : {}),
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n') && line) resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`agent exited with ${code}: ${stderr}`)));
    setTimeout(() => reject(new Error(`agent did not start: ${stderr}`)), 15_000).unref();
  });
  return {
    url,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
