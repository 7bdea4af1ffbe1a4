/**
 * Profiles the output-throughput path: a relay and a relay-registered agent (or a direct agent)
 * each run as `node --cpu-prof`, the client in this process is profiled through the inspector,
 * `head -c BYTES /dev/zero` streams through, and the self time of each process's hottest
 * functions is printed (bench/profile-summary.ts).
 *
 *   npm run build && node dist/bench/profile-relay.js [relay|direct] [MiB] [command...]
 *
 * Profiles are kept in a temp directory whose path is printed. Not part of `npm run bench`.
 */
import { spawn } from 'node:child_process';
import { Session } from 'node:inspector/promises';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { tuneMemory } from '../cli/memory-tuning.js';
import { ExecClient } from '../src/client/exec-client.js';
import { CLI, startProcess, type RunningProcess } from './cli-process.js';
import { formatSummary, summarizeProfile, summarizeProfileFile } from './profile-summary.js';

// The client runs in this process: tuned as the CLI's client commands are.
tuneMemory();
const mode = process.argv[2] === 'direct' ? 'direct' : 'relay';
const mib = Number(process.argv[3] ?? 128);
const bytes = mib * 1024 * 1024;
const argv = process.argv.length > 4 ? process.argv.slice(4) : ['head', '-c', String(bytes), '/dev/zero'];
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-profile-'));
const profiled = (role: string, args: string[]): Promise<RunningProcess> =>
  startProcess(['--cpu-prof', `--cpu-prof-dir=${path.join(dir, role)}`, CLI, ...args]);

const processes: Array<{ role: string; process: RunningProcess }> = [];
let client: ExecClient;
if (mode === 'relay') {
  const tokenFile = path.join(dir, 'token');
  await writeFile(tokenFile, 'profile-token-0123456789abcdef\n', { mode: 0o600 });
  const keyFile = path.join(dir, 'agent.key');
  const agentKey = await new Promise<string>((resolve) => {
    let out = '';
    const keygen = spawn(process.execPath, [CLI, 'keygen', '--out', keyFile]);
    keygen.stdout.on('data', (d: Buffer) => (out += d.toString()));
    keygen.on('exit', () => resolve(out.trim()));
  });
  // Its own bindings file: the default one under $XDG_STATE_HOME would keep the last run's agent key.
  const relay = await profiled('relay', ['relay', '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--bindings-file', path.join(dir, 'bindings')]);
  processes.push({ role: 'relay', process: relay });
  const agent = await profiled('agent', ['agent', '--relay', relay.firstLine, '--environment-id', 'profile', '--key', keyFile, '--token-file', tokenFile, '--allow-any-client']);
  processes.push({ role: 'agent', process: agent });
  client = await ExecClient.connect({ relay: relay.firstLine, environmentId: 'profile', agentKey, token: 'profile-token-0123456789abcdef' });
} else {
  const agent = await profiled('agent', ['agent', '--listen', 'ws://127.0.0.1:0']);
  processes.push({ role: 'agent', process: agent });
  client = await ExecClient.connect(agent.firstLine);
}

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 500 });
await session.post('Profiler.start');
const started = process.hrtime.bigint();
const handle = await client.exec(argv, { cwd: '/', env, collectOutput: false, streamEvents: true });
let received = 0;
for await (const event of handle.events) if (event.type === 'output') received += event.chunk.length;
await handle.completion;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const { profile } = await session.post('Profiler.stop');
session.disconnect();
await writeFile(path.join(dir, 'client.cpuprofile'), JSON.stringify(profile));
console.log(`${mode}: ${argv.join(' ')}: ${received} bytes in ${seconds.toFixed(2)} s = ${(received / 2 ** 20 / seconds).toFixed(1)} MiB/s`);
client.close();
await Promise.all(processes.map((p) => p.process.stop()));

console.log(formatSummary('client (this process)', summarizeProfile(JSON.parse(await readFile(path.join(dir, 'client.cpuprofile'), 'utf8')), 30)));
for (const { role } of processes) {
  for (const file of await readdir(path.join(dir, role)).catch(() => [] as string[])) {
    console.log(formatSummary(role, await summarizeProfileFile(path.join(dir, role, file), 30)));
  }
}
console.log(`profiles in ${dir}`);
