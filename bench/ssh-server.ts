/**
 * A throwaway OpenSSH server for the benchmarks: Debian's `openssh-server` (installed with apt-get
 * when `sshd` is missing and we run as root), started in the foreground on a loopback port with its
 * own config, host key, user key and authorized_keys in a temp directory. The system's sshd
 * configuration and keys are never read or touched (`sshd -f OUR_CONFIG`, `ssh -F /dev/null`).
 *
 * The login is the current user (root in the bench containers) by public key only. OpenSSH's default
 * cipher order puts chacha20-poly1305@openssh.com first, the same AEAD as execrelay's Noise channel.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { processTree } from '../test/support/process-table.js';

const run = promisify(execFile);
const SSHD_CANDIDATES = ['/usr/sbin/sshd', '/usr/local/sbin/sshd', '/sbin/sshd'];

function findSshd(): string | undefined {
  return SSHD_CANDIDATES.find((candidate) => existsSync(candidate));
}

let installing: Promise<string> | undefined;

/** The sshd binary; installs `openssh-server` (apt-get, as root only) when it is missing. */
export function ensureSshd(): Promise<string> {
  installing ??= (async () => {
    const found = findSshd();
    if (found && existsSync('/usr/bin/ssh')) return found;
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      throw new Error('sshd is not installed and this is not root: install openssh-server to compare with OpenSSH');
    }
    console.error('  installing openssh-server with apt-get (sshd is missing) ...');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const apt = async (args: string[]) => run('apt-get', args, { env, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 });
    try {
      await apt(['install', '-y', '--no-install-recommends', 'openssh-server', 'openssh-client']);
    } catch {
      await apt(['update']);
      await apt(['install', '-y', '--no-install-recommends', 'openssh-server', 'openssh-client']);
    }
    const installed = findSshd();
    if (!installed) throw new Error('apt-get installed openssh-server but no sshd binary was found');
    return installed;
  })();
  installing.catch(() => (installing = undefined));
  return installing;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export interface SshServer {
  /** Arguments for `ssh` that reach this server with no connection sharing: `ssh ...args COMMAND`. */
  readonly baseArgs: string[];
  /** Arguments that go through the ControlMaster connection opened by {@link startMaster}. */
  readonly masterArgs: string[];
  /** Opens the persistent ControlMaster connection (idempotent). */
  startMaster(): Promise<void>;
  /**
   * The processes whose CPU a transfer costs: `client`, the ControlMaster `ssh` (it does the
   * client's crypto; the short-lived mux client that hands it the command's pipes is not counted);
   * `server`, the sshd daemon and every process under it now (the connection's sshd processes).
   */
  cpuPids(): Promise<{ client: number[]; server: number[] }>;
  stop(): Promise<void>;
}

/** Starts sshd on a free loopback port; resolves once it accepts a login. */
export async function startSshServer(): Promise<SshServer> {
  const sshd = await ensureSshd();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-bench-ssh-'));
  const port = await freePort();
  const hostKey = path.join(dir, 'host_ed25519');
  const userKey = path.join(dir, 'user_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-host', '-f', hostKey]);
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'bench-user', '-f', userKey]);
  await writeFile(path.join(dir, 'authorized_keys'), await readFile(`${userKey}.pub`), { mode: 0o600 });
  const hostPub = (await readFile(`${hostKey}.pub`, 'utf8')).trim().split(' ').slice(0, 2).join(' ');
  await writeFile(path.join(dir, 'known_hosts'), `[127.0.0.1]:${port} ${hostPub}\n`);
  const config = [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${hostKey}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    'StrictModes no',
    'UsePAM no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    'PrintMotd no',
    'PrintLastLog no',
    'UseDNS no',
    'MaxSessions 64',
    'MaxStartups 64:30:128',
    'LogLevel ERROR',
    // The remote command runs under the login shell, and bash sources ~/.bashrc for commands that
    // come through sshd. A HOME with no rc files keeps this figure about ssh, not about this
    // machine's root .bashrc (here `pyenv init` in it costs 200-400 ms per command).
    `SetEnv HOME=${path.join(dir, 'home')}`,
  ].join('\n');
  await mkdir(path.join(dir, 'home'));
  const configFile = path.join(dir, 'sshd_config');
  await writeFile(configFile, `${config}\n`);
  // Debian's sshd refuses to start without its privilege separation directory (the service unit
  // creates it; here nothing has).
  if (!existsSync('/run/sshd')) await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const daemon: ChildProcess = spawn(sshd, ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  daemon.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4096)));
  const controlPath = path.join(dir, 'cm.sock');
  const common = [
    '-F', '/dev/null',
    '-p', String(port),
    '-i', userKey,
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${path.join(dir, 'known_hosts')}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'LogLevel=ERROR',
  ];
  const target = `${os.userInfo().username}@127.0.0.1`;
  const baseArgs = [...common, '-o', 'ControlMaster=no', '-o', 'ControlPath=none', target];
  const masterArgs = [...common, '-o', 'ControlMaster=no', '-o', `ControlPath=${controlPath}`, target];
  let master: ChildProcess | undefined;

  const stop = async (): Promise<void> => {
    if (master && master.exitCode === null) {
      master.kill('SIGTERM');
      await new Promise((resolve) => master!.once('exit', resolve));
    }
    if (daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((resolve) => {
        const timer = setTimeout(() => daemon.kill('SIGKILL'), 3000);
        daemon.once('exit', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    }
    await rm(dir, { recursive: true, force: true });
  };

  // Wait until it accepts a login (bounded).
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await run('ssh', [...baseArgs, 'true'], { timeout: 5_000 });
      break;
    } catch (error) {
      if (daemon.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`sshd did not accept a login: ${(error as Error).message}\n${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  return {
    baseArgs,
    masterArgs,
    async startMaster() {
      if (master) return;
      master = spawn('ssh', [...common, '-o', 'ControlMaster=yes', '-o', `ControlPath=${controlPath}`, '-N', target], { stdio: 'ignore' });
      const until = Date.now() + 10_000;
      for (;;) {
        try {
          await run('ssh', [...common, '-o', `ControlPath=${controlPath}`, '-O', 'check', target], { timeout: 2_000 });
          return;
        } catch {
          if (master.exitCode !== null || Date.now() > until) throw new Error('ssh ControlMaster did not come up');
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    },
    async cpuPids() {
      return { client: master?.pid === undefined ? [] : [master.pid], server: daemon.pid === undefined ? [] : processTree(daemon.pid) };
    },
    stop,
  };
}
