/**
 * The real `codex exec-server --remote` 0.169.0 (or `codex exec-server forward --connect URL`, which
 * registers another WebSocket exec-server) registering with a relay: spawned with its
 * registration bearer on stdin, HOME/CODEX_HOME in a fresh scratch directory, in its own process
 * group (stop() kills the group). `registered` resolves once its log says its rendezvous socket is
 * connected.
 */
import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ensureCodexInstalled } from './codex-exec-server.js';

export interface CodexRemoteExecutor {
  readonly pid: number;
  /** Resolves with the exit code when the process ends (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Recent stderr (its log), for diagnostics and assertions. */
  log(): string;
  /** Resolves when the log has a line matching `pattern` (rejects after `timeoutMs` or on exit). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** What codex logs once its rendezvous WebSocket is open. */
export const RENDEZVOUS_CONNECTED_LOG = /Noise executor connected to rendezvous/;

export async function startCodexRemoteExecutor(options: {
  registry: string;
  environmentId: string;
  bearer: string;
  /** `codex exec-server forward --connect URL`: register the WebSocket exec-server at URL instead of codex's own. */
  forwardTo?: string;
}): Promise<CodexRemoteExecutor> {
  const binary = await ensureCodexInstalled();
  const home = await fsp.mkdtemp(path.join(os.tmpdir(), 'execrelay-codex-remote-'));
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CODEX_') && k !== 'OPENAI_API_KEY') env[k] = v;
  Object.assign(env, { HOME: home, CODEX_HOME: path.join(home, '.codex'), RUST_LOG: 'info', NO_COLOR: '1' });
  await fsp.mkdir(path.join(home, '.codex'));
  const mode = options.forwardTo === undefined ? [] : ['forward', '--connect', options.forwardTo];
  const child = spawn(binary, ['exec-server', ...mode, '--remote', options.registry, '--environment-id', options.environmentId, '--registration-bearer-stdin'], {
    cwd: home,
    env,
    stdio: ['pipe', 'ignore', 'pipe'],
    detached: true,
  });
  child.stdin.end(`${options.bearer}\n`);
  let log = '';
  const waiters = new Set<() => void>();
  child.stderr.on('data', (d: Buffer) => {
    // eslint-disable-next-line no-control-regex
    log = (log + d.toString('utf8').replace(/\x1b\[[0-9;]*m/g, '')).slice(-256 * 1024);
    for (const check of waiters) check();
  });
  let exited = false;
  const exitCode = new Promise<number | null>((resolve) => child.once('exit', (code) => ((exited = true), resolve(code))));
  const exit = exitCode.then(() => undefined);
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* gone */
    }
  };
  process.once('exit', () => killGroup('SIGKILL'));
  return {
    pid: child.pid!,
    exited: exitCode,
    log: () => log,
    waitForLog(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`codex did not log ${pattern} within ${timeoutMs} ms:\n${log.slice(-4000)}`)), timeoutMs);
        const check = () => {
          if (pattern.test(log)) done();
          else if (exited) done(new Error(`codex exited before logging ${pattern}:\n${log.slice(-4000)}`));
        };
        const done = (error?: Error) => {
          clearTimeout(timer);
          waiters.delete(check);
          if (error) reject(error);
          else resolve();
        };
        waiters.add(check);
        void exit.then(check);
        check();
      });
    },
    async stop() {
      if (!exited) {
        killGroup('SIGTERM');
        const timer = setTimeout(() => killGroup('SIGKILL'), 3000);
        await exit;
        clearTimeout(timer);
      }
      killGroup('SIGKILL');
      await fsp.rm(home, { recursive: true, force: true, maxRetries: 3 });
    },
  };
}
