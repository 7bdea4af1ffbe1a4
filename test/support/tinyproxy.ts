import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './loopback-port.js';

/** A real tinyproxy (the Debian package) on loopback: an HTTP CONNECT proxy whose log shows each CONNECT. */
export interface Tinyproxy {
  /** `http://127.0.0.1:PORT` (`https://127.0.0.1:PORT`, the TLS front, with `tls`), without credentials. */
  url: string;
  /** The proxy's log so far (`Request (file descriptor N): CONNECT HOST:PORT HTTP/1.1` per tunnel). */
  log(): string;
  stop(): Promise<void>;
}

/** Whether tinyproxy is installed (CI installs it: `.ci/run`). */
export function hasTinyproxy(): boolean {
  return spawnSync('sh', ['-c', 'command -v tinyproxy'], { stdio: 'ignore' }).status === 0;
}

export interface TinyproxyOptions {
  /** The only ports it tunnels to (any other CONNECT is refused `403 Access violation`); all ports when absent. */
  connectPorts?: number[];
  /** `BasicAuth USER PASSWORD`: a request without these credentials is answered `407`. */
  basicAuth?: { user: string; password: string };
  /**
   * Reached over TLS: a TLS terminator (node:tls, as stunnel would be) in front of tinyproxy with
   * this certificate; `url` is then `https://` and names the terminator.
   */
  tls?: { cert: string; key: string };
}

/** Starts tinyproxy in the foreground on a free loopback port (see {@link TinyproxyOptions}). */
export async function startTinyproxy(options: TinyproxyOptions = {}): Promise<Tinyproxy> {
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
    ...(options.basicAuth ? [`BasicAuth ${options.basicAuth.user} ${options.basicAuth.password}`] : []),
  ].join('\n');
  writeFileSync(path.join(dir, 'tinyproxy.conf'), `${config}\n`);
  writeFileSync(logFile, '');
  const child = spawn('tinyproxy', ['-d', '-c', path.join(dir, 'tinyproxy.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await waitForPort(port, 10_000, () => stderr, child);
  const front = options.tls ? await startTlsFront(port, options.tls) : undefined;
  return {
    url: front ? `https://127.0.0.1:${front.port}` : `http://127.0.0.1:${port}`,
    log: () => readFileSync(logFile, 'utf8'),
    stop: () =>
      new Promise<void>((resolve) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        };
        front?.close();
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', done);
        child.kill('SIGTERM');
      }),
  };
}

/** A TLS terminator on a free loopback port that pipes each connection, decrypted, to `targetPort`. */
async function startTlsFront(targetPort: number, credentials: { cert: string; key: string }): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ cert: readFileSync(credentials.cert), key: readFileSync(credentials.key) }, (client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.pipe(upstream).pipe(client);
    for (const socket of [client, upstream]) socket.on('close', end).on('error', end);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}
