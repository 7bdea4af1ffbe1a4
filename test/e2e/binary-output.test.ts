import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { ExecClient } from '../../src/client/exec-client.js';
import { decodeBinaryMessage, isBinaryMessage } from '../../src/protocol/binary-message.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';
import { connectThroughRelay, startRelay, startRemoteAgent, type RelayFixture, type RemoteAgentFixture } from '../support/relay-harness.js';
import { runCli } from '../support/cli.js';
import { ensureCodexInstalled, startCodexExecServer, type CodexExecServer } from '../support/codex-exec-server.js';
import { startWebSocketCaptureProxy } from '../support/websocket-capture-proxy.js';

const cwd = os.tmpdir();
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
/** 4 MiB of every byte value (pseudo-random, seeded), its sha256 printed on stderr by the same command. */
const PRODUCE = ['sh', '-c', 'head -c 4194304 /dev/urandom | tee /tmp/.binpath-$$ ; sha256sum < /tmp/.binpath-$$ | cut -c1-64 >&2; rm -f /tmp/.binpath-$$'];

/** What an agent offers at `initialize` on a transport that carries binary messages. */
const OFFERED = { ptyResize: true, fileTransfer: true, binaryOutput: true, binaryFileBlocks: true };

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function expectIntact(client: ExecClient) {
  const result = await client.exec(PRODUCE, { cwd, env }).then((h) => h.completion);
  expect(result.exitCode).toBe(0);
  expect(result.stdout.length).toBe(4 * 1024 * 1024);
  expect(sha256(result.stdout)).toBe(result.stderr.toString().trim());
  return result;
}

/** What the raw client sends: `initialize {capabilities}` (an older execrelay client) and `initialized` params (undefined: none). */
interface Handshake {
  capabilities?: unknown;
  initialized?: unknown;
}

/** A codex-shaped raw WebSocket client: records every frame and whether it was binary. */
async function rawFrames(url: string, handshake: Handshake, argv: string[]) {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  const frames: Array<{ binary: boolean; data: Buffer }> = [];
  let wake: () => void = () => {};
  socket.on('message', (data, isBinary) => {
    frames.push({ binary: isBinary, data: data as Buffer });
    wake();
  });
  const waitFor = async (predicate: () => boolean) => {
    const deadline = Date.now() + 10_000;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out; frames: ${frames.map((f) => (f.binary ? '<binary>' : f.data.toString().slice(0, 200))).join(' | ')}`);
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  };
  const text = () => frames.filter((f) => !f.binary).map((f) => JSON.parse(f.data.toString()) as Record<string, any>);
  const initializeParams = handshake.capabilities === undefined ? { clientName: 'codex-shaped' } : { clientName: 'raw', capabilities: handshake.capabilities };
  socket.send(JSON.stringify({ id: 1, method: 'initialize', params: initializeParams }));
  await waitFor(() => text().some((m) => m.id === 1));
  const initialize = text().find((m) => m.id === 1)!;
  socket.send(JSON.stringify(handshake.initialized === undefined ? { method: 'initialized' } : { method: 'initialized', params: handshake.initialized }));
  socket.send(JSON.stringify({ id: 2, method: 'process/start', params: { processId: 'p1', argv, cwd: pathToFileURL(cwd).href, env, tty: false, pipeStdin: false, arg0: null } }));
  await waitFor(() => text().some((m) => m.method === 'process/closed'));
  socket.close();
  return { initialize, frames, text: text() };
}

describe('the binary output path (binaryOutput)', () => {
  let direct: RunningAgent;
  let relay: RelayFixture;
  let remote: RemoteAgentFixture;

  beforeAll(async () => {
    direct = await startAgent();
    relay = await startRelay();
    remote = await startRemoteAgent(relay.url, 'binpath-env');
  });
  afterAll(async () => {
    remote?.stop();
    await Promise.all([relay?.stop(), direct?.stop()]);
  });

  it('is negotiated on a direct WebSocket and carries every byte value intact, stdout and stderr apart', async () => {
    const client = await ExecClient.connect(direct.url);
    try {
      expect(client.usesBinaryOutput).toBe(true);
      await expectIntact(client);
      const mixed = await client.exec(['sh', '-c', 'printf out; printf err >&2; printf more'], { cwd, env }).then((h) => h.completion);
      expect([mixed.stdout.toString(), mixed.stderr.toString()]).toEqual(['outmore', 'err']);
    } finally {
      client.close();
    }
  });

  it('is negotiated through the relay and Noise, and output is intact', async () => {
    const client = await connectThroughRelay(relay.url, remote);
    try {
      expect(client.usesBinaryOutput).toBe(true);
      await expectIntact(client);
    } finally {
      client.close();
    }
  });

  it('stays on JSON when the client does not take it up (binaryOutput: false), with the same bytes', async () => {
    const client = await ExecClient.connect(direct.url, { binaryOutput: false });
    try {
      expect(client.usesBinaryOutput).toBe(false);
      await expectIntact(client);
    } finally {
      client.close();
    }
  });

  it('is offered to every client on a WebSocket; one that takes nothing up (codex-shaped) sees only JSON text frames with base64 output', async () => {
    for (const initialized of [undefined, {}, { binaryOutput: false }, { binaryOutput: 'yes' }, [1, 2]]) {
      const { initialize, frames, text } = await rawFrames(direct.url, { initialized }, ['sh', '-c', 'printf hello']);
      expect(initialize.result.capabilities).toEqual(OFFERED);
      expect(frames.every((f) => !f.binary)).toBe(true);
      const output = text.filter((m) => m.method === 'process/output');
      expect(Buffer.concat(output.map((m) => Buffer.from(m.params.chunk, 'base64'))).toString()).toBe('hello');
    }
  });

  const binaryOutputOf = (frames: Array<{ binary: boolean; data: Buffer }>) =>
    frames.filter((f) => f.binary).map((f) => {
      expect(isBinaryMessage(f.data)).toBe(true);
      const decoded = decodeBinaryMessage(f.data);
      if (!decoded.ok) throw new Error(decoded.reason);
      if (decoded.message.kind !== 'processOutput') throw new Error(`unexpected ${decoded.message.kind}`);
      return decoded.message;
    });

  it('a client that takes it up in initialized gets the output as binary messages of the documented layout, events still in seq order', async () => {
    const { initialize, frames, text } = await rawFrames(direct.url, { initialized: { binaryOutput: true } }, ['sh', '-c', 'printf hello; printf oops >&2']);
    const binary = binaryOutputOf(frames);
    expect(initialize.result.capabilities).toEqual(OFFERED);
    expect(text.filter((m) => m.method === 'process/output')).toEqual([]);
    expect(binary.filter((m) => m.stream === 'stdout').map((m) => m.chunk.toString()).join('')).toBe('hello');
    expect(binary.filter((m) => m.stream === 'stderr').map((m) => m.chunk.toString()).join('')).toBe('oops');
    expect(binary.every((m) => m.processId === 'p1')).toBe(true);
    const seqs = [...binary.map((m) => m.seq), ...text.filter((m) => m.method?.startsWith('process/')).map((m) => m.params.seq as number)];
    expect(seqs.sort((a, b) => a - b)).toEqual(seqs.map((_, i) => i + 1));
  });

  it('an older execrelay client that asks in initialize {capabilities} still gets binary output', async () => {
    const { frames, text } = await rawFrames(direct.url, { capabilities: { binaryOutput: true }, initialized: {} }, ['sh', '-c', 'printf older']);
    expect(binaryOutputOf(frames).map((m) => m.chunk.toString()).join('')).toBe('older');
    expect(text.filter((m) => m.method === 'process/output')).toEqual([]);
  });

  it('an agent refuses a binary message from a client with an error, and the connection keeps working', async () => {
    const socket = new WebSocket(direct.url);
    await new Promise((resolve) => socket.once('open', resolve));
    const replies: Array<Record<string, any>> = [];
    socket.on('message', (data) => replies.push(JSON.parse(data.toString())));
    socket.send(Buffer.from([0xb1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x41, 0x42]), { binary: true });
    // JSON text in a binary frame is still JSON (as before the extension).
    socket.send(Buffer.from(JSON.stringify({ id: 7, method: 'initialize', params: { clientName: 'x' } })), { binary: true });
    const deadline = Date.now() + 5_000;
    while (replies.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    socket.close();
    expect(replies).toContainEqual({ id: -1, error: { code: -32600, message: 'invalid request: unexpected binary message' } });
    expect(replies.find((r) => r.id === 7)?.result.sessionId).toEqual(expect.any(String));
  });

  it('is not offered on stdio (one JSON object per line)', async () => {
    const input = [
      JSON.stringify({ id: 1, method: 'initialize', params: { clientName: 'stdio', capabilities: { binaryOutput: true } } }),
      JSON.stringify({ method: 'initialized', params: { binaryOutput: true, binaryFileBlocks: true } }),
    ].join('\n');
    const result = await runCli(['agent', '--listen', 'stdio'], { input: `${input}\n` });
    const first = JSON.parse(result.stdout.trim().split('\n')[0]!);
    expect(first.result.capabilities).toEqual({ ptyResize: true, fileTransfer: true });
  });
});

describe('binaryOutput against the real codex exec-server 0.169.0', () => {
  let codex: CodexExecServer;
  beforeAll(async () => {
    await ensureCodexInstalled();
    codex = await startCodexExecServer();
  }, 600_000);
  afterAll(async () => {
    await codex?.stop();
  });

  it('codex offers nothing: the client stays on JSON and output is intact', async () => {
    const client = await ExecClient.connect(codex.url);
    try {
      expect(client.usesBinaryOutput).toBe(false);
      expect(client.usesBinaryFileBlocks).toBe(false);
      const result = await client.exec(['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x'], { cwd, env }).then((h) => h.completion);
      expect(result.stdout.toString()).toBe('x'.repeat(300_000));
    } finally {
      client.close();
    }
  });

  it('what the client sends a codex exec-server is the codex wire: initialize {clientName}, initialized {}, JSON text only, no extension field', async () => {
    const proxy = await startWebSocketCaptureProxy(codex.url);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'execrelay-codex-wire-'));
    const client = await ExecClient.connect(proxy.url);
    try {
      const result = await client.exec(['sh', '-c', 'printf hello'], { cwd, env }).then((h) => h.completion);
      expect(result.stdout.toString()).toBe('hello');
      const file = path.join(dir, 'blocks.bin');
      const bytes = randomBytes(100_000);
      await client.fs.writeFile(file, bytes);
      const read: Buffer[] = [];
      for await (const chunk of client.fs.readStream(file, { blockSize: 64 * 1024 })) read.push(chunk);
      expect(sha256(Buffer.concat(read))).toBe(sha256(bytes));
    } finally {
      client.close();
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    }
    const sent = proxy.messages.filter((m) => m.direction === 'upstream');
    expect(proxy.messages.filter((m) => m.binary)).toEqual([]);
    expect(sent[0]!.data.toString()).toBe('{"id":1,"method":"initialize","params":{"clientName":"execrelay"}}');
    expect(sent[1]!.data.toString()).toBe('{"method":"initialized","params":{}}');
    const methods = proxy.json('upstream').map((m) => m.method as string);
    expect(methods).toEqual(expect.arrayContaining(['process/start', 'fs/writeFile', 'fs/open', 'fs/readBlock', 'fs/close']));
    for (const message of sent) expect(message.data.toString()).not.toMatch(/capabilities|binaryOutput|binaryFileBlocks|ptySize/);
  });
});
