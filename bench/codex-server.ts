/**
 * The real `codex exec-server` (npm `@openai/codex@0.169.0`) for the benchmarks.
 *
 * A trimmed copy of test/support/codex-exec-server.ts (bench/ is compiled by tsconfig.build.json,
 * which does not include test/; importing the test harness would emit test files into dist/ and,
 * since it finds the repo from its own location, install a second copy under dist/). It shares the
 * test harness's install: `<repo>/.cache/codex-0.169.0`, complete when the marker file is there.
 * When it is missing it installs the same way (npm, `--ignore-scripts --include=optional`, into a
 * temp directory renamed into place) without the harness's cross-worker lock: the bench runs alone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const CODEX_VERSION = '0.169.0';
/** `<repo>`: dist/bench/ is two levels below it. */
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const INSTALL_DIR = path.join(REPO_ROOT, '.cache', `codex-${CODEX_VERSION}`);
const COMPLETE_MARKER = '.execrelay-install-complete';

function binaryPathIn(dir: string): string {
  const table: Record<string, { pkg: string; triple: string }> = {
    'linux/x64': { pkg: '@openai/codex-linux-x64', triple: 'x86_64-unknown-linux-musl' },
    'linux/arm64': { pkg: '@openai/codex-linux-arm64', triple: 'aarch64-unknown-linux-musl' },
    'darwin/x64': { pkg: '@openai/codex-darwin-x64', triple: 'x86_64-apple-darwin' },
    'darwin/arm64': { pkg: '@openai/codex-darwin-arm64', triple: 'aarch64-apple-darwin' },
  };
  const hit = table[`${process.platform}/${process.arch}`];
  if (!hit) throw new Error(`@openai/codex has no prebuilt binary for ${process.platform}/${process.arch}`);
  return path.join(dir, 'node_modules', ...hit.pkg.split('/'), 'vendor', hit.triple, 'bin', 'codex');
}

function complete(dir: string): boolean {
  return existsSync(path.join(dir, COMPLETE_MARKER)) && existsSync(binaryPathIn(dir));
}

function npmInstall(prefix: string): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    const k = key.toLowerCase();
    if (k.startsWith('npm_config_') || k.startsWith('npm_package_') || k.startsWith('npm_lifecycle_')) delete env[key];
  }
  const args = ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', '--ignore-scripts', '--include=optional', '--no-package-lock', '--loglevel=error', `@openai/codex@${CODEX_VERSION}`];
  return new Promise((resolve, reject) => {
    const child = spawn('npm', args, { cwd: prefix, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let output = '';
    child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8192)));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`npm install @openai/codex@${CODEX_VERSION} failed (${code}): ${output}`))));
  });
}

/** The native `codex` binary, installing the package into `<repo>/.cache` when needed. */
export async function ensureCodex(): Promise<string> {
  if (complete(INSTALL_DIR)) return binaryPathIn(INSTALL_DIR);
  console.error(`  installing @openai/codex@${CODEX_VERSION} into ${INSTALL_DIR} (about 400 MB) ...`);
  await mkdir(path.dirname(INSTALL_DIR), { recursive: true });
  const tmp = `${INSTALL_DIR}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(tmp, { recursive: true });
  try {
    await npmInstall(tmp);
    if (!existsSync(binaryPathIn(tmp))) throw new Error('npm installed @openai/codex but its platform binary is missing');
    await writeFile(path.join(tmp, COMPLETE_MARKER), `@openai/codex@${CODEX_VERSION}\n`);
    if (!complete(INSTALL_DIR)) {
      await rm(INSTALL_DIR, { recursive: true, force: true });
      await rename(tmp, INSTALL_DIR);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return binaryPathIn(INSTALL_DIR);
}

export interface CodexServer {
  url: string;
  stop(): Promise<void>;
}

/** `codex exec-server --listen ws://127.0.0.1:0` with HOME and CODEX_HOME in a scratch directory. */
export async function startCodexServer(): Promise<CodexServer> {
  const binary = await ensureCodex();
  const home = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-codex-'));
  await mkdir(path.join(home, '.codex'), { recursive: true });
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CODEX_') && k !== 'OPENAI_API_KEY') env[k] = v;
  env.HOME = home;
  env.CODEX_HOME = path.join(home, '.codex');
  const child: ChildProcess = spawn(binary, ['exec-server', '--listen', 'ws://127.0.0.1:0'], { cwd: home, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-8192)));
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* gone */
    }
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    }
    killGroup('SIGKILL');
    await rm(home, { recursive: true, force: true });
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let buffered = '';
      const timer = setTimeout(() => reject(new Error(`codex exec-server printed no URL: ${stderr}`)), 30_000);
      child.stdout!.on('data', (d: Buffer) => {
        buffered += d.toString();
        const match = /^(wss?:\/\/\S+)$/m.exec(buffered);
        if (match?.[1]) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`codex exec-server exited (${code}): ${stderr}`));
      });
    });
    return { url, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
