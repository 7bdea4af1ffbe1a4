/**
 * One output-throughput transfer from a client in its own process (for bench/throughput-ab.ts, so
 * that each variant's client runs that variant's build): connects through the relay or directly,
 * streams `head -c BYTES /dev/zero`, and prints one JSON line: bytes received, output messages
 * received, seconds and the CPU milliseconds this process spent during the transfer (`process.cpuUsage()`).
 *
 *   node dist/bench/throughput-client.js relay RELAY_URL ENV_ID AGENT_KEY TOKEN BYTES
 *   node dist/bench/throughput-client.js direct AGENT_URL BYTES
 */
import { tuneMemory } from '../cli/memory-tuning.js';
import { ExecClient } from '../src/client/exec-client.js';
import { COMMAND_ENV } from './fixtures.js';

// Tuned as the CLI's client commands are (a variant built before the tuning runs without it).
tuneMemory();

const [mode, url, ...rest] = process.argv.slice(2);
const bytes = Number(mode === 'relay' ? rest[3] : rest[0]);
if ((mode !== 'relay' && mode !== 'direct') || !url || !Number.isSafeInteger(bytes) || bytes <= 0) {
  console.error('usage: throughput-client.js relay RELAY_URL ENV_ID AGENT_KEY TOKEN BYTES | direct AGENT_URL BYTES');
  process.exit(2);
}
const client =
  mode === 'relay'
    ? await ExecClient.connect({ relay: url, environmentId: rest[0]!, agentKey: rest[1]!, token: rest[2]! })
    : await ExecClient.connect(url);
const cpuBefore = process.cpuUsage();
const started = process.hrtime.bigint();
const handle = await client.exec(['head', '-c', String(bytes), '/dev/zero'], { cwd: '/', env: COMMAND_ENV, collectOutput: false, streamEvents: true });
let received = 0;
let messages = 0;
for await (const event of handle.events) {
  if (event.type !== 'output') continue;
  received += event.chunk.length;
  messages++;
}
await handle.completion;
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const cpu = process.cpuUsage(cpuBefore);
client.close();
console.log(JSON.stringify({ bytes: received, messages, seconds, cpuMs: (cpu.user + cpu.system) / 1000 }));
process.exit(received === bytes ? 0 : 1);
