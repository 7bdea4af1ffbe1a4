import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startCli } from '../support/cli.js';

const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../..', import.meta.url));
const devDependencies = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies;

/** A consumer of the published package: compiled against its declarations, then run. */
const CONSUMER_SOURCE = `import { ExecClient, type ProcessCompletion } from 'execrelay';
import { Method } from 'execrelay/protocol';

const client = await ExecClient.connect(process.argv[2]!);
const handle = await client.exec(['sh', '-c', 'echo hello-from-the-package; exit 5'], { cwd: '/' });
const completion: ProcessCompletion = await handle.completion;
console.log(JSON.stringify({ exitCode: completion.exitCode, stdout: completion.stdout.toString(), reads: client.readsIssued, method: Method.ProcessStart }));
client.close();
`;

/** What a host without a toolchain has: node, npm and a few coreutils; no cc, gcc, g++, make or python. */
const BARE_HOST_PROGRAMS = ['sh', 'env', 'cat', 'ls', 'mkdir', 'rm', 'tty', 'uname'];
const COMPILERS = ['cc', 'gcc', 'g++', 'c++', 'clang', 'make', 'python', 'python3'];

function findOnPath(name: string): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    if (dir !== '' && existsSync(candidate)) return realpathSync(candidate);
  }
  throw new Error(`${name} is not on the PATH`);
}

/** A PATH directory of symlinks to node, npm and BARE_HOST_PROGRAMS only. */
function bareHostPath(dir: string): string {
  const bin = path.join(dir, 'bare-bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, path.join(bin, 'node'));
  symlinkSync(findOnPath('npm'), path.join(bin, 'npm'));
  for (const name of BARE_HOST_PROGRAMS) symlinkSync(findOnPath(name), path.join(bin, name));
  return bin;
}

/** `npm install TARBALL` (install scripts allowed) into a fresh project, with only `bin` on the PATH. */
async function installWithoutCompiler(projectDir: string, tarball: string, bin: string, extraArgs: string[] = []): Promise<string> {
  mkdirSync(projectDir);
  writeFileSync(path.join(projectDir, 'package.json'), JSON.stringify({ name: 'bare-host', private: true }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...extraArgs, tarball], {
    cwd: projectDir,
    env: { ...process.env, PATH: bin },
    timeout: 180_000,
  });
  return path.join(projectDir, 'node_modules', 'execrelay', 'dist', 'cli', 'main.js');
}

/** An agent from an installed package, with only `bin` on the PATH; resolves with its URL. */
async function startInstalledAgent(cli: string, bin: string): Promise<{ url: string; stop(): Promise<void> }> {
  const agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0'], { PATH: bin }, { cli });
  return { url: agent.firstLine, stop: agent.stop };
}

/** `execrelay exec` from an installed package, with only `bin` on the PATH; never rejects on a non-zero exit. */
function execInstalled(cli: string, bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, 'exec', ...args], { env: { ...process.env, PATH: bin }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr });
    });
  });
}

/**
 * `npm pack`, installed into an empty project: `import { ExecClient } from 'execrelay'` compiles
 * against the shipped declarations and runs a command on an agent; the tarball holds no test or
 * bench file.
 */
describe('the npm package', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-package-'));
  const consumer = path.join(dir, 'consumer');
  let tarball = '';
  let agent: Awaited<ReturnType<typeof startCli>>;

  beforeAll(async () => {
    const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: REPO });
    const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = path.join(dir, info!.filename);
    writeFileSync(path.join(dir, 'files.json'), JSON.stringify(info!.files.map((f) => f.path)));
    agent = await startCli(['agent', '--listen', 'ws://127.0.0.1:0']);
  }, 120_000);
  afterAll(async () => {
    await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('holds what runs and no test or bench file', () => {
    const files = JSON.parse(readFileSync(path.join(dir, 'files.json'), 'utf8')) as string[];
    expect(files).toContain('dist/cli/main.js');
    expect(files).toContain('dist/src/index.js');
    expect(files).toContain('dist/src/index.d.ts');
    expect(files.filter((f) => /(^|\/)(test|bench)\/|\.test\.|\.bench\./.test(f))).toEqual([]);
  });

  it('installs into an empty project, compiles against its declarations and runs a command', async () => {
    mkdirSync(consumer);
    writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    writeFileSync(
      path.join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, types: ['node'], skipLibCheck: false, outDir: 'out' }, include: ['consumer.ts'] }),
    );
    writeFileSync(path.join(consumer, 'consumer.ts'), CONSUMER_SOURCE);
    // The client needs no native module at all (the PTY serves the agent's --tty only): no install scripts.
    const install = await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', tarball, `typescript@${devDependencies.typescript}`, `@types/node@${devDependencies['@types/node']}`],
      { cwd: consumer, timeout: 180_000 },
    );
    // Every dependency runs on this Node (the package's `engines` promise): npm warns EBADENGINE otherwise.
    expect(install.stderr).not.toContain('EBADENGINE');
    await run(path.join(consumer, 'node_modules', '.bin', 'tsc'), ['-p', '.'], { cwd: consumer });
    const { stdout } = await run(process.execPath, [path.join(consumer, 'out', 'consumer.js'), agent.firstLine], { cwd: consumer });
    expect(JSON.parse(stdout)).toEqual({ exitCode: 5, stdout: 'hello-from-the-package\n', reads: 0, method: 'process/start' });
  }, 240_000);

  it('installs with no C/C++ compiler on the PATH and its agent runs commands, tty ones too', async () => {
    const bin = bareHostPath(dir);
    // The PATH really has no toolchain: each lookup fails, where node's succeeds.
    const lookUp = (program: string) => run(path.join(bin, 'sh'), ['-c', `command -v ${program}`], { env: { ...process.env, PATH: bin } });
    expect((await lookUp('node')).stdout).toBe(`${path.join(bin, 'node')}\n`);
    for (const compiler of COMPILERS) await expect(lookUp(compiler)).rejects.toThrow();
    const cli = await installWithoutCompiler(path.join(dir, 'bare-host'), tarball, bin);
    const agent = await startInstalledAgent(cli, bin);
    try {
      const plain = await execInstalled(cli, bin, ['--url', agent.url, '--', 'sh', '-c', 'echo plain-ok; exit 3']);
      expect(plain).toMatchObject({ code: 3, stdout: 'plain-ok\n' });
      const tty = await execInstalled(cli, bin, ['--tty', '--url', agent.url, '--', 'sh', '-c', 'test -t 1 && echo tty-ok']);
      expect(tty.stderr).toBe('');
      expect(tty).toMatchObject({ code: 0, stdout: 'tty-ok\r\n' });
    } finally {
      await agent.stop();
    }
  }, 300_000);

  it('installed without its optional PTY binary: commands run, tty ones fail with a clear error', async () => {
    const bin = existsSync(path.join(dir, 'bare-bin')) ? path.join(dir, 'bare-bin') : bareHostPath(dir);
    const cli = await installWithoutCompiler(path.join(dir, 'no-pty-host'), tarball, bin, ['--omit=optional']);
    expect(existsSync(path.join(dir, 'no-pty-host', 'node_modules', '@lydell', 'node-pty'))).toBe(true);
    expect(existsSync(path.join(dir, 'no-pty-host', 'node_modules', '@lydell', `node-pty-${process.platform}-${process.arch}`))).toBe(false);
    const agent = await startInstalledAgent(cli, bin);
    try {
      const tty = await execInstalled(cli, bin, ['--tty', '--url', agent.url, '--', 'sh', '-c', 'echo never']);
      expect(tty.code).toBe(255);
      expect(tty.stdout).toBe('');
      expect(tty.stderr).toContain('this agent has no PTY support: install @lydell/node-pty');
      // The agent carries on: the next command (and a second tty attempt) get their answers.
      const plain = await execInstalled(cli, bin, ['--url', agent.url, '--', 'sh', '-c', 'echo plain-ok']);
      expect(plain).toMatchObject({ code: 0, stdout: 'plain-ok\n' });
      const again = await execInstalled(cli, bin, ['--tty', '--url', agent.url, '--', 'true']);
      expect(again.code).toBe(255);
      expect(again.stderr).toContain('this agent has no PTY support');
    } finally {
      await agent.stop();
    }
  }, 300_000);
});
