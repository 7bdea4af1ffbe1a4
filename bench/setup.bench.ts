/**
 * Scenario 3: connection setup, from nothing to the first command's result.
 *   - execrelay through relay+Noise: a new client WebSocket to the relay, a new reliable stream, the
 *     Noise XX handshake pinning the agent's key (the client's own identity generated fresh, as the
 *     CLI does without --identity), `initialize`, then `true` to completion, then close;
 *   - the same against the direct local agent (WebSocket connect, `initialize`, `true`);
 *   - the real codex exec-server 0.169.0 (the same steps as the direct agent);
 *   - `ssh HOST true` with no ControlMaster: TCP connect, key exchange, host key check, public key
 *     user authentication, a session channel, `true` (OpenSSH's default chacha20-poly1305 cipher).
 * Variants are interleaved in blocks; every connection is closed before the next one opens.
 */
import { execFile } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { ExecClient } from '../src/client/exec-client.js';
import { benchNumber, optionalBaseline, timeInterleaved, unavailable, type BenchFigure } from './bench-result.js';
import { startCodexServer } from './codex-server.js';
import { runOneShot, startExecrelay } from './fixtures.js';
import { startSshServer } from './ssh-server.js';

const RUNS = benchNumber('BENCH_SETUP_RUNS', 30, 8);
const BLOCKS = 3;
const run_ = promisify(execFile);

const RELAY = 'execrelay via relay+Noise (connect, handshake, initialize, `true`)';
const DIRECT = 'direct local agent (connect, initialize, `true`)';
const CODEX = 'codex exec-server 0.169.0 (connect, initialize, `true`)';
const SSH = 'ssh HOST true, no ControlMaster (connect, kex, auth, `true`)';

async function fresh(connect: () => Promise<ExecClient>): Promise<void> {
  const client = await connect();
  try {
    await runOneShot(client, ['true']);
  } finally {
    client.close();
  }
}

export async function run(): Promise<BenchFigure[]> {
  const execrelay = await startExecrelay();
  const ssh = await optionalBaseline('OpenSSH server', startSshServer);
  const codex = await optionalBaseline('codex exec-server', startCodexServer);
  try {
    const scenario = 'connection setup (nothing to first `true` result)';
    const variants: Array<[string, () => Promise<void>]> = [
      [RELAY, () => fresh(execrelay.connectRelay)],
      [DIRECT, () => fresh(execrelay.connectDirect)],
    ];
    if (typeof codex !== 'string') variants.push([CODEX, () => fresh(() => ExecClient.connect(codex.url))]);
    if (typeof ssh !== 'string') variants.push([SSH, async () => void (await run_('ssh', [...ssh.baseArgs, 'true'], { timeout: 10_000 }))]);
    const samples = await timeInterleaved(variants, { runs: RUNS, blocks: BLOCKS, warmup: 2, budgetMs: 30_000 });
    const figure = (name: string, baseline?: string, alsoCompare?: string[]): BenchFigure => ({
      scenario,
      name,
      unit: 'ms',
      higherIsBetter: false,
      samples: samples.get(name) ?? [],
      ...(baseline ? { baseline } : {}),
      ...(alsoCompare ? { alsoCompare } : {}),
    });
    return [
      typeof ssh !== 'string' ? figure(SSH) : unavailable({ scenario, name: SSH, unit: 'ms', higherIsBetter: false }, ssh),
      figure(RELAY, SSH, [DIRECT]),
      figure(DIRECT, SSH),
      typeof codex !== 'string' ? figure(CODEX, SSH) : unavailable({ scenario, name: CODEX, unit: 'ms', higherIsBetter: false }, codex),
    ];
  } finally {
    await Promise.all([execrelay.stop(), typeof ssh !== 'string' ? ssh.stop() : undefined, typeof codex !== 'string' ? codex.stop() : undefined]);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
