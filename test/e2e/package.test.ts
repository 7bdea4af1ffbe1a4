import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    // The client needs no native build (node-pty serves the agent's --tty only): no install scripts.
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
});
