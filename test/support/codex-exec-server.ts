/**
 * Test harness for the reference implementation: the real `codex exec-server`
 * from npm `@openai/codex@0.169.0`.
 *
 * - `ensureCodexInstalled()` installs the package on demand into
 *   `<repo>/.cache/codex-0.169.0` (git-ignored) and returns the absolute path of
 *   the native `codex` binary (not the Node launcher `bin/codex.js`; on Node 20
 *   the launcher spawns the binary as a child, which would put a second process
 *   between us and the server).
 * - `startCodexExecServer()` launches `codex exec-server --listen ws://127.0.0.1:0`
 *   with HOME/CODEX_HOME in a fresh scratch directory and returns the URL it
 *   printed on stdout.
 *
 * The package has no install scripts (the binary ships prebuilt in an optional
 * dependency `@openai/codex-<os>-<arch>`, an npm alias of
 * `@openai/codex@0.169.0-<os>-<arch>`), so npm 11's install-script policy does not
 * matter; we still pass `--ignore-scripts`, and `--include=optional` so that a
 * user-level `omit=optional` cannot silently drop the binary. A clean install
 * took ~7 s here and is ~404 MB on disk (the linux-x64 `codex` binary alone is
 * 294 MB).
 *
 * Wire facts observed against this server are in docs/codex-wire.md.
 *
 * Only Node built-ins are used.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pidAlive } from './process-liveness.js';

export const CODEX_VERSION = '0.169.0';
const PACKAGE_SPEC = `@openai/codex@${CODEX_VERSION}`;

/** `<repo>` = two levels above test/support/. */
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CACHE_ROOT = path.join(REPO_ROOT, '.cache');
const INSTALL_DIR = path.join(CACHE_ROOT, `codex-${CODEX_VERSION}`);
const LOCK_DIR = `${INSTALL_DIR}.lock`;
/** Written into a finished install before it is renamed into place. */
const COMPLETE_MARKER = '.execrelay-install-complete';

/** How long to wait for another worker's install before giving up. */
const INSTALL_WAIT_MS = 10 * 60_000;
/** A lock older than this whose owner cannot be confirmed alive is stolen. */
const STALE_LOCK_MS = 15 * 60_000;
const URL_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 3_000;

/** Same mapping as the package's own launcher (bin/codex.js). */
function platformTarget(): { pkg: string; triple: string; exe: string } {
  const key = `${process.platform}/${process.arch}`;
  const table: Record<string, { pkg: string; triple: string }> = {
    'linux/x64': { pkg: '@openai/codex-linux-x64', triple: 'x86_64-unknown-linux-musl' },
    'android/x64': { pkg: '@openai/codex-linux-x64', triple: 'x86_64-unknown-linux-musl' },
    'linux/arm64': { pkg: '@openai/codex-linux-arm64', triple: 'aarch64-unknown-linux-musl' },
    'android/arm64': { pkg: '@openai/codex-linux-arm64', triple: 'aarch64-unknown-linux-musl' },
    'darwin/x64': { pkg: '@openai/codex-darwin-x64', triple: 'x86_64-apple-darwin' },
    'darwin/arm64': { pkg: '@openai/codex-darwin-arm64', triple: 'aarch64-apple-darwin' },
    'win32/x64': { pkg: '@openai/codex-win32-x64', triple: 'x86_64-pc-windows-msvc' },
    'win32/arm64': { pkg: '@openai/codex-win32-arm64', triple: 'aarch64-pc-windows-msvc' },
  };
  const hit = table[key];
  if (!hit) throw new Error(`@openai/codex has no prebuilt binary for ${key}`);
  return { ...hit, exe: process.platform === 'win32' ? 'codex.exe' : 'codex' };
}

function binaryPathIn(installDir: string): string {
  const t = platformTarget();
  return path.join(installDir, 'node_modules', ...t.pkg.split('/'), 'vendor', t.triple, 'bin', t.exe);
}

function isCompleteInstall(installDir: string): boolean {
  return fs.existsSync(path.join(installDir, COMPLETE_MARKER)) && fs.existsSync(binaryPathIn(installDir));
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Environment for the npm child: drop npm script variables that could redirect the install. */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    const k = key.toLowerCase();
    if (
      k === 'npm_config_prefix' ||
      k === 'npm_config_local_prefix' ||
      k === 'npm_config_global' ||
      k === 'npm_config_location' ||
      k === 'npm_config_omit' ||
      k === 'npm_config_dry_run' ||
      k.startsWith('npm_config_save') ||
      k.startsWith('npm_package_') ||
      k.startsWith('npm_lifecycle_')
    ) {
      delete env[key];
    }
  }
  return env;
}

function runNpmInstall(prefix: string): Promise<void> {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = [
    'install',
    '--prefix',
    prefix,
    '--no-save',
    '--no-audit',
    '--no-fund',
    '--ignore-scripts',
    '--include=optional',
    '--no-package-lock',
    '--loglevel=error',
    PACKAGE_SPEC,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(npm, args, {
      cwd: prefix,
      env: npmEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
      shell: process.platform === 'win32',
    });
    let output = '';
    const keep = (d: Buffer): void => {
      output = (output + d.toString('utf8')).slice(-16_384);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`npm ${args.join(' ')} failed (code ${code}, signal ${signal}):\n${output}`));
    });
  });
}

/** Take the install lock (mkdir is atomic). Returns false if someone else holds it. */
async function tryLock(): Promise<boolean> {
  try {
    await fsp.mkdir(LOCK_DIR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    // Steal a lock whose owner died (or that is implausibly old).
    try {
      const owner = Number((await fsp.readFile(path.join(LOCK_DIR, 'pid'), 'utf8')).trim());
      const st = await fsp.stat(LOCK_DIR);
      const ownerGone = Number.isInteger(owner) && owner > 0 && !pidAlive(owner);
      if (ownerGone || Date.now() - st.mtimeMs > STALE_LOCK_MS) {
        await fsp.rm(LOCK_DIR, { recursive: true, force: true });
      }
    } catch {
      // No pid file yet: the owner is between mkdir and writeFile; check the age only.
      try {
        const st = await fsp.stat(LOCK_DIR);
        if (Date.now() - st.mtimeMs > STALE_LOCK_MS) await fsp.rm(LOCK_DIR, { recursive: true, force: true });
      } catch {
        /* lock vanished: retry below */
      }
    }
    return false;
  }
  await fsp.writeFile(path.join(LOCK_DIR, 'pid'), `${process.pid}\n`);
  return true;
}

let installPromise: Promise<string> | undefined;

/**
 * Installs `@openai/codex@0.169.0` into `<repo>/.cache/codex-0.169.0` if it is not
 * there yet and returns the absolute path of the native `codex` executable.
 * Safe to call from parallel vitest workers: one installs (into a temp dir that is
 * renamed into place), the others wait for it.
 */
export function ensureCodexInstalled(): Promise<string> {
  installPromise ??= doEnsureInstalled().catch((err: unknown) => {
    installPromise = undefined;
    throw err;
  });
  return installPromise;
}

async function doEnsureInstalled(): Promise<string> {
  const binary = binaryPathIn(INSTALL_DIR);
  if (isCompleteInstall(INSTALL_DIR)) return binary;
  await fsp.mkdir(CACHE_ROOT, { recursive: true });

  const deadline = Date.now() + INSTALL_WAIT_MS;
  for (;;) {
    if (isCompleteInstall(INSTALL_DIR)) return binary;
    if (await tryLock()) break;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for another process to install ${PACKAGE_SPEC} (lock ${LOCK_DIR})`);
    }
    await sleep(500);
  }

  try {
    if (isCompleteInstall(INSTALL_DIR)) return binary;
    const tmp = `${INSTALL_DIR}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    await fsp.mkdir(tmp, { recursive: true });
    try {
      await runNpmInstall(tmp);
      const tmpBinary = binaryPathIn(tmp);
      if (!fs.existsSync(tmpBinary)) {
        throw new Error(
          `npm installed ${PACKAGE_SPEC} but the platform binary ${tmpBinary} is missing ` +
            `(optional dependency ${platformTarget().pkg} was not installed)`,
        );
      }
      await fsp.writeFile(path.join(tmp, COMPLETE_MARKER), `${PACKAGE_SPEC}\n`);
      // A half-finished leftover (no marker) may sit at the final path.
      await fsp.rm(INSTALL_DIR, { recursive: true, force: true });
      await fsp.rename(tmp, INSTALL_DIR);
    } finally {
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  } finally {
    await fsp.rm(LOCK_DIR, { recursive: true, force: true });
  }
  if (!isCompleteInstall(INSTALL_DIR)) throw new Error(`install of ${PACKAGE_SPEC} did not complete`);
  return binary;
}

export interface CodexExecServer {
  /** `ws://127.0.0.1:<port>` as printed by the server. */
  url: string;
  /** OS pid of the server (also its process-group id). */
  pid: number;
  /** Scratch directory used as HOME (CODEX_HOME is `<home>/.codex`); removed by stop(). */
  home: string;
  /** Recent stderr of the server, for diagnostics. */
  stderr(): string;
  /** Kill the server and its process group, then remove the scratch directory. Idempotent. */
  stop(): Promise<void>;
}

/** Running servers and their scratch HOME, cleaned up on process exit if stop() was never called. */
const liveServers = new Map<ChildProcess, string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [child, home] of liveServers) {
      killGroup(child, 'SIGKILL');
      try {
        fs.rmSync(home, { recursive: true, force: true });
      } catch {
        /* best effort */
      }
    }
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  const pid = child.pid;
  if (pid === undefined) return;
  try {
    if (process.platform === 'win32') child.kill(signal);
    else process.kill(-pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Spawns `codex exec-server --listen ws://127.0.0.1:0` with HOME and CODEX_HOME in
 * a fresh scratch directory and resolves once it has printed its URL.
 *
 * (`--exit-on-stdin-close` would be the natural orphan guard, but 0.169.0 only
 * accepts it together with `--remote`.) Servers still running when this process
 * exits are SIGKILLed, with their process group, from a process 'exit' hook.
 */
export async function startCodexExecServer(): Promise<CodexExecServer> {
  const binary = await ensureCodexInstalled();
  const home = await fsp.mkdtemp(path.join(os.tmpdir(), 'execrelay-codex-home-'));
  const codexHome = path.join(home, '.codex');
  await fsp.mkdir(codexHome, { recursive: true });

  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Never let a developer's real Codex configuration or credentials leak in.
    if (k.startsWith('CODEX_') || k === 'OPENAI_API_KEY') continue;
    env[k] = v;
  }
  env.HOME = home;
  env.USERPROFILE = home;
  env.CODEX_HOME = codexHome;

  const child = spawn(binary, ['exec-server', '--listen', 'ws://127.0.0.1:0'], {
    cwd: home,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: process.platform !== 'win32', // own process group, so stop() can kill the group
  });
  liveServers.set(child, home);
  installExitHook();

  let stderrBuf = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderrBuf = (stderrBuf + d.toString('utf8')).slice(-32_768);
  });

  let exited = child.exitCode !== null || child.signalCode !== null;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      killGroup(child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), STOP_GRACE_MS);
      await exitPromise;
      clearTimeout(timer);
    }
    // Anything left in the group (children the server spawned without setsid).
    killGroup(child, 'SIGKILL');
    liveServers.delete(child);
    child.stdout?.destroy();
    child.stderr?.destroy();
    await fsp.rm(home, { recursive: true, force: true, maxRetries: 3 });
  };

  try {
    const url = await readUrl(child, () => stderrBuf);
    if (child.pid === undefined) throw new Error('codex exec-server has no pid');
    unrefChild(child);
    return { url, pid: child.pid, home, stderr: () => stderrBuf, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function readUrl(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, url?: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      child.off('error', onError);
      if (err) reject(err);
      else resolve(url ?? '');
    };
    const onData = (d: Buffer): void => {
      if (done) return; // keep draining stdout after the URL so the pipe never fills
      buf += d.toString('utf8');
      for (;;) {
        const nl = buf.indexOf('\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        const m = /^(wss?:\/\/\S+)$/.exec(line);
        if (m?.[1]) {
          finish(undefined, m[1]);
          return;
        }
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      finish(new Error(`codex exec-server exited before printing its URL (code ${code}, signal ${signal}):\n${stderr()}`));
    const onError = (err: Error): void => finish(err);
    const timer = setTimeout(
      () => finish(new Error(`codex exec-server did not print its URL within ${URL_TIMEOUT_MS} ms:\n${stderr()}`)),
      URL_TIMEOUT_MS,
    );
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/** Streams of a child expose unref() on their underlying handle; not in the public types. */
function unrefStream(stream: unknown): void {
  const handle = (stream as { _handle?: { unref?: () => void } } | null)?._handle;
  handle?.unref?.();
}

function unrefChild(child: ChildProcess): void {
  child.unref();
  unrefStream(child.stdout);
  unrefStream(child.stderr);
}
