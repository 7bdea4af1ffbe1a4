import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { ExecClient } from '../../src/client/exec-client.js';
import { decodeBinaryMessage, isBinaryMessage } from '../../src/protocol/binary-output.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';
import { connectThroughRelay, startRelay, startRemoteAgent, type RelayFixture, type RemoteAgentFixture } from '../support/relay-harness.js';
import { runCli } from '../support/cli.js';
import { ensureCodexInstalled, startCodexExecServer, type CodexExecServer } from '../support/codex-exec-server.js';

const cwd = os.tmpdir();
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
/** 4 MiB of every byte value (pseudo-random, seeded), its sha256 printed on stderr by the same command. */
const PRODUCE = ['sh', '-c', 'head -c 4194304 /dev/urandom | tee /tmp/.binpath-$$ ; sha256sum < /tmp/.binpath-$$ | cut -c1-64 >&2; rm -f /tmp/.binpath-$$'];

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function expectIntact(client: ExecClient) {
  const result = await client.exec(PRODUCE, { cwd, env }).then((h) => h.completion);
  expect(result.exitCode).toBe(0);
  expect(result.stdout.length).toBe(4 * 1024 * 1024);
  expect(sha256(result.stdout)).toBe(result.stderr.toString().trim());
  return result;
}

/** A codex-shaped raw WebSocket client: records every frame and whether it was binary. */
async function rawFrames(url: string, capabilities: unknown, argv: string[]) {
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
  const initializeParams = capabilities === undefined ? { clientName: 'codex-shaped' } : { clientName: 'raw', capabilities };
  socket.send(JSON.stringify({ id: 1, method: 'initialize', params: initializeParams }));
  await waitFor(() => text().some((m) => m.id === 1));
  const initialize = text().find((m) => m.id === 1)!;
  socket.send(JSON.stringify({ method: 'initialized', params: {} }));
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

  it('stays on JSON when the client does not ask (binaryOutput: false), with the same bytes', async () => {
    const client = await ExecClient.connect(direct.url, { binaryOutput: false });
    try {
      expect(client.usesBinaryOutput).toBe(false);
      await expectIntact(client);
    } finally {
      client.close();
    }
  });

  it('a client that does not ask (codex-shaped) is not offered it and sees only JSON text frames with base64 output', async () => {
    for (const capabilities of [undefined, {}, { binaryOutput: false }]) {
      const { initialize, frames, text } = await rawFrames(direct.url, capabilities, ['sh', '-c', 'printf hello']);
      expect(initialize.result.capabilities).toEqual({ ptyResize: true, fileTransfer: true });
      expect(frames.every((f) => !f.binary)).toBe(true);
      const output = text.filter((m) => m.method === 'process/output');
      expect(Buffer.concat(output.map((m) => Buffer.from(m.params.chunk, 'base64'))).toString()).toBe('hello');
    }
  });

  it('a client that asks is offered it and gets the output as binary messages of the documented layout, events still in seq order', async () => {
    const { initialize, frames, text } = await rawFrames(direct.url, { binaryOutput: true }, ['sh', '-c', 'printf hello; printf oops >&2']);
    const binary = frames.filter((f) => f.binary).map((f) => {
      expect(isBinaryMessage(f.data)).toBe(true);
      const decoded = decodeBinaryMessage(f.data);
      if (!decoded.ok) throw new Error(decoded.reason);
      return decoded.message;
    });
    expect(initialize.result.capabilities).toEqual({ ptyResize: true, fileTransfer: true, binaryOutput: true });
    expect(text.filter((m) => m.method === 'process/output')).toEqual([]);
    expect(binary.filter((m) => m.stream === 'stdout').map((m) => m.chunk.toString()).join('')).toBe('hello');
    expect(binary.filter((m) => m.stream === 'stderr').map((m) => m.chunk.toString()).join('')).toBe('oops');
    expect(binary.every((m) => m.processId === 'p1')).toBe(true);
    const seqs = [...binary.map((m) => m.seq), ...text.filter((m) => m.method?.startsWith('process/')).map((m) => m.params.seq as number)];
    expect(seqs.sort((a, b) => a - b)).toEqual(seqs.map((_, i) => i + 1));
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
    const input = [JSON.stringify({ id: 1, method: 'initialize', params: { clientName: 'stdio', capabilities: { binaryOutput: true } } })].join('\n');
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

  it('codex ignores the ask and offers nothing: the client stays on JSON and output is intact', async () => {
    const client = await ExecClient.connect(codex.url);
    try {
      expect(client.usesBinaryOutput).toBe(false);
      const result = await client.exec(['sh', '-c', 'head -c 300000 /dev/zero | tr "\\0" x'], { cwd, env }).then((h) => h.completion);
      expect(result.stdout.toString()).toBe('x'.repeat(300_000));
    } finally {
      client.close();
    }
  });
});
