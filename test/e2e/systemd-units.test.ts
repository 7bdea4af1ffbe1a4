import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI_PATH } from '../support/cli.js';

const UNITS_DIR = fileURLToPath(new URL('../../deploy/systemd/', import.meta.url));
const UNITS = ['execrelay-relay.service', 'execrelay-agent.service'];
const has = (command: string) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
/** Skipped only off CI: in CI a missing systemd-analyze is a failure (`.ci/run` installs systemd). */
const skipVerify = !has('systemd-analyze') && !process.env.CI;

describe('deploy/systemd units', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-units-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The unit with its ExecStart pointing at the CLI built in this checkout (node + dist/cli/main.js). */
  function installed(unit: string, transform: (text: string) => string = (t) => t): string {
    const text = readFileSync(path.join(UNITS_DIR, unit), 'utf8');
    expect(text).toContain('ExecStart=/usr/local/bin/execrelay ');
    const file = path.join(dir, unit);
    writeFileSync(file, transform(text.replaceAll('/usr/local/bin/execrelay', `${process.execPath} ${CLI_PATH}`)));
    return file;
  }
  const verify = (...files: string[]) => spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8' });

  it.skipIf(skipVerify)('systemd-analyze verify accepts both units without a warning', () => {
    if (process.env.CI && !has('systemd-analyze')) throw new Error('CI is set but systemd-analyze is missing; install with: apt-get install -y systemd');
    const result = verify(...UNITS.map((unit) => installed(unit)));
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it.skipIf(skipVerify)('and the check can fail: an unknown option warns, a missing ExecStart binary fails', () => {
    const typo = verify(installed('execrelay-relay.service', (t) => t.replace('ProtectSystem=strict', 'ProtectSytem=strict')));
    expect(typo.stderr).toContain("Unknown key 'ProtectSytem'");
    const missing = verify(installed('execrelay-agent.service', (t) => t.replace(`${process.execPath} ${CLI_PATH}`, path.join(dir, 'no-such-execrelay'))));
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain('is not executable');
  });

  it('the units name only flags the CLI has, through the variables its --help shows', () => {
    const variables = new Set<string>();
    for (const unit of UNITS) {
      for (const match of readFileSync(path.join(UNITS_DIR, unit), 'utf8').matchAll(/^Environment=(EXECRELAY_[A-Z_]+)=/gm)) variables.add(match[1]!);
    }
    for (const env of ['relay.env', 'agent.env']) {
      for (const match of readFileSync(path.join(UNITS_DIR, env), 'utf8').matchAll(/^#?(EXECRELAY_[A-Z_]+)=/gm)) variables.add(match[1]!);
    }
    const help = ['relay', 'agent'].map((command) => spawnSync(process.execPath, [CLI_PATH, command, '--help'], { encoding: 'utf8' }).stdout).join('\n');
    // EXECRELAY_LOG_LEVEL is read by the logger of every command rather than by a flag.
    const unknown = [...variables].filter((v) => v !== 'EXECRELAY_LOG_LEVEL' && !help.includes(`env: ${v})`));
    expect(unknown).toEqual([]);
    expect(variables.size).toBeGreaterThan(10);
  });

  it.skipIf(!has('setpriv') || process.getuid?.() !== 0)(
    'the relay runs as an unprivileged user with no capabilities and no_new_privs (User=, NoNewPrivileges=, CapabilityBoundingSet=)',
    async () => {
      chmodSync(dir, 0o711);
      const home = path.join(dir, 'relay-home');
      mkdirSync(home, { mode: 0o700 });
      const tokenFile = path.join(home, 'relay-tokens');
      writeFileSync(tokenFile, 'unit-test-token-0123456789 client *\n', { mode: 0o600 });
      for (const file of [home, tokenFile]) chownSync(file, 65534, 65534);
      const child = spawn(
        'setpriv',
        ['--reuid=65534', '--regid=65534', '--clear-groups', '--no-new-privs', '--bounding-set=-all', '--inh-caps=-all', process.execPath, CLI_PATH,
          'relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--bindings-file', path.join(home, 'environment-bindings')],
        { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, EXECRELAY_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      try {
        const url = await new Promise<string>((resolve, reject) => {
          child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()));
          child.once('exit', (code) => reject(new Error(`relay exited ${code}: ${stderr}`)));
        });
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
        expect(status).toMatch(/^CapBnd:\s+0+$/m);
        expect(status).toMatch(/^Uid:\s+65534\s/m);
        const livez = await fetch(`${url.replace(/^ws/, 'http')}/livez`);
        expect(livez.status).toBe(200);
      } finally {
        child.kill('SIGTERM');
      }
    },
  );

  it.skipIf(!has('python3') || os.platform() !== 'linux')(
    'MemoryDenyWriteExecute is left off for a reason: node aborts when memory may not be writable and executable',
    () => {
      // PR_SET_MDWE (Linux 6.3+) is the kernel's form of MemoryDenyWriteExecute=yes.
      const script = `import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])`;
      const run = (...args: string[]) => spawnSync('python3', ['-c', script, process.execPath, ...args], { encoding: 'utf8' });
      const plain = run('-e', 'for (let i = 0; i < 1e6; i++) Math.sqrt(i); console.log("ran")');
      if (plain.status === 77) return; // a kernel without PR_SET_MDWE: nothing to show here
      expect(plain.stdout).not.toContain('ran');
      expect(plain.status).not.toBe(0);
      expect(run('--jitless', '-e', 'console.log("ran")').stdout).toBe('ran\n');
    },
  );
});
