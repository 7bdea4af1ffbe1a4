/**
 * The endpoint layers alone, in one process, no sockets: a Noise channel over a reliable stream over
 * an in-memory link (each frame copied and delivered on a later event-loop turn, as a socket would),
 * carrying what the agent sends for output: `process/output` notifications of 64 KiB chunks
 * (~87 KiB of JSON each). Against the floor of that work, node:crypto ChaCha20-Poly1305 sealing and
 * opening the same bytes in 60 KiB records. Also a small request/response round trip through the
 * same stack. This is the regression guard for the frame codec, reliable stream and Noise channel
 * (bench/profile-relay.js profiles the whole three-process path).
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { MAX_RECORD_PLAINTEXT_BYTES } from '../src/noise/noise-channel.js';
import { benchNumber, type BenchFigure } from './bench-result.js';
import { xxChannelPair } from './xx-channel-pair.js';

const MIB = benchNumber('BENCH_LAYERS_MIB', 128, 16);
const RUNS = benchNumber('BENCH_LAYERS_RUNS', 3, 1);
const ROUND_TRIPS = benchNumber('BENCH_LAYERS_ROUND_TRIPS', 3000, 500);

const channelPair = () => xxChannelPair();

const outputMessage = JSON.stringify({ method: 'process/output', params: { processId: randomUUID(), seq: 1, stream: 'stdout', chunk: Buffer.alloc(65536, 7).toString('base64') } });

/** MiB/s of process output (64 KiB per message) through the stack, and CPU ms per MiB of output. */
async function stackThroughput(): Promise<{ mibs: number; cpuMsPerMiB: number }> {
  const { client, agent } = await channelPair();
  const count = Math.ceil((MIB * 2 ** 20) / 65536);
  let received = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  client.onMessage(() => {
    if (++received === count) done();
  });
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) await agent.send(outputMessage);
  await finished;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  client.close();
  agent.close();
  const mib = (count * 65536) / 2 ** 20;
  return { mibs: mib / seconds, cpuMsPerMiB: (used.user + used.system) / 1000 / mib };
}

/** The crypto alone: seal and open the same JSON bytes in 60 KiB records with node:crypto. */
function cryptoFloor(): { mibs: number; cpuMsPerMiB: number } {
  const key = randomBytes(32);
  const nonce = Buffer.alloc(12);
  const bytes = Buffer.from(outputMessage);
  const count = Math.ceil((MIB * 2 ** 20) / 65536);
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    nonce.writeUInt32LE(i, 4);
    for (let offset = 0; offset < bytes.length; offset += MAX_RECORD_PLAINTEXT_BYTES) {
      const record = bytes.subarray(offset, Math.min(bytes.length, offset + MAX_RECORD_PLAINTEXT_BYTES));
      const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      cipher.setAAD(Buffer.alloc(0), { plaintextLength: record.length });
      const sealed = cipher.update(record);
      cipher.final();
      const tag = cipher.getAuthTag();
      const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
      decipher.setAAD(Buffer.alloc(0), { plaintextLength: sealed.length });
      decipher.setAuthTag(tag);
      decipher.update(sealed);
      decipher.final();
    }
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const used = process.cpuUsage(cpu);
  const mib = (count * 65536) / 2 ** 20;
  return { mibs: mib / seconds, cpuMsPerMiB: (used.user + used.system) / 1000 / mib };
}

/** A process/start-sized request and its response through the stack: µs per round trip. */
async function roundTrips(): Promise<number[]> {
  const { client, agent } = await channelPair();
  const request = JSON.stringify({ id: 1, method: 'process/start', params: { processId: randomUUID(), argv: ['true'], cwd: 'file:///', env: { PATH: '/usr/bin:/bin' }, tty: false, pipeStdin: false, arg0: null } });
  const response = JSON.stringify({ id: 1, result: { processId: randomUUID() } });
  agent.onMessage(() => void agent.send(response));
  let wake: () => void = () => undefined;
  client.onMessage(() => wake());
  const once = () =>
    new Promise<void>((resolve) => {
      wake = resolve;
      void client.send(request);
    });
  for (let i = 0; i < 200; i++) await once();
  const samples: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const start = process.hrtime.bigint();
    await once();
    samples.push(Number(process.hrtime.bigint() - start) / 1e3);
  }
  client.close();
  agent.close();
  return samples;
}

export async function run(): Promise<BenchFigure[]> {
  await stackThroughput(); // warm-up
  const stack: Array<{ mibs: number; cpuMsPerMiB: number }> = [];
  const floor: Array<{ mibs: number; cpuMsPerMiB: number }> = [];
  for (let i = 0; i < RUNS; i++) {
    floor.push(cryptoFloor());
    stack.push(await stackThroughput());
  }
  const scenario = `endpoint layers in one process (${MIB} MiB of output as process/output JSON, both ends)`;
  const FLOOR = 'node:crypto ChaCha20-Poly1305 seal+open of the same bytes (floor)';
  const STACK = 'Noise channel + reliable stream + frame codec, in-memory link';
  const cpuScenario = `${scenario}: CPU per MiB of output`;
  return [
    { scenario, name: FLOOR, unit: 'MiB/s', higherIsBetter: true, samples: floor.map((f) => f.mibs) },
    { scenario, name: STACK, unit: 'MiB/s', higherIsBetter: true, samples: stack.map((s) => s.mibs), baseline: FLOOR },
    { scenario: cpuScenario, name: FLOOR, unit: 'ms/MiB', higherIsBetter: false, samples: floor.map((f) => f.cpuMsPerMiB) },
    { scenario: cpuScenario, name: STACK, unit: 'ms/MiB', higherIsBetter: false, samples: stack.map((s) => s.cpuMsPerMiB), baseline: FLOOR },
    {
      scenario: 'endpoint layers in one process: small request/response round trip',
      name: 'Noise channel + reliable stream + frame codec, in-memory link',
      unit: 'us',
      higherIsBetter: false,
      samples: await roundTrips(),
    },
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { summarize } = await import('./bench-result.js');
  console.log(JSON.stringify(summarize(await run()), (k, v) => (k === 'samples' ? undefined : v), 2));
}
