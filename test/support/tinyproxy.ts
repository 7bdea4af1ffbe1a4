import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './loopback-port.js';

/** A real tinyproxy (the Debian package) on loopback: an HTTP CONNECT proxy whose log shows each CONNECT. */
export interface Tinyproxy {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** The proxy's log so far (`Request (file descriptor N): CONNECT HOST:PORT HTTP/1.1` per tunnel). */
  log(): string;
  stop(): Promise<void>;
}

/** Whether tinyproxy is installed (CI installs it: `.ci/run`). */
export function hasTinyproxy(): boolean {
  return spawnSync('sh', ['-c', 'command -v tinyproxy'], { stdio: 'ignore' }).status === 0;
}

/**
 * Starts tinyproxy in the foreground on a free loopback port. `connectPorts`: the only ports it
 * tunnels to (any other CONNECT is refused `403 Access violation`); all ports when absent.
 */
export async function startTinyproxy(options: { connectPorts?: number[] } = {}): Promise<Tinyproxy> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-tinyproxy-'));
  const port = await freePort();
  const logFile = path.join(dir, 'tinyproxy.log');
  const config = [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 60',
    `LogFile "${logFile}"`,
    'LogLevel Info',
    'MaxClients 50',
    'Allow 127.0.0.1',
    ...(options.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
  ].join('\n');
  writeFileSync(path.join(dir, 'tinyproxy.conf'), `${config}\n`);
  writeFileSync(logFile, '');
  const child = spawn('tinyproxy', ['-d', '-c', path.join(dir, 'tinyproxy.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await waitForPort(port, 10_000, () => stderr, child);
  return {
    url: `http://127.0.0.1:${port}`,
    log: () => readFileSync(logFile, 'utf8'),
    stop: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', done);
        child.kill('SIGTERM');
      }),
  };
}
