import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { downloadFile, TRANSFER_BLOCK_BYTES, uploadFile } from '../../src/client/file-transfer.js';
import { decodeBinaryMessage, encodeBinaryWriteBlock, type BinaryMessage } from '../../src/protocol/binary-message.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';
import { runCli } from '../support/cli.js';
import { connectThroughRelay, startRelay, startRemoteAgent, type RelayFixture, type RemoteAgentFixture } from '../support/relay-harness.js';
import { startWebSocketCaptureProxy, type WebSocketCaptureProxy } from '../support/websocket-capture-proxy.js';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
/** A file of several blocks and a partial one: 16 full 64 KiB blocks and 12,345 bytes. */
const FILE_BYTES = 16 * TRANSFER_BLOCK_BYTES + 12_345;
const BLOCKS = Math.ceil(FILE_BYTES / TRANSFER_BLOCK_BYTES);
const TEMPORARY_NAME = /\.execrelay-[0-9a-f]+\.tmp$/;

function decodedBinary(proxy: WebSocketCaptureProxy, direction: 'upstream' | 'downstream'): BinaryMessage[] {
  return proxy.messages
    .filter((m) => m.direction === direction && m.binary)
    .map((m) => {
      const decoded = decodeBinaryMessage(m.data);
      if (!decoded.ok) throw new Error(decoded.reason);
      return decoded.message;
    });
}

/** A bare WebSocket peer that keeps text (parsed) and binary messages apart. */
class RawPeer {
  readonly text: Array<Record<string, any>> = [];
  readonly binary: Buffer[] = [];
  private nextId = 1;
  private wake: () => void = () => {};

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data, isBinary) => {
      if (isBinary) this.binary.push(data as Buffer);
      else this.text.push(JSON.parse(data.toString()) as Record<string, any>);
      this.wake();
    });
  }

  static async connect(url: string): Promise<RawPeer> {
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  async until<T>(find: () => T | undefined): Promise<T> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`timed out; text: ${JSON.stringify(this.text).slice(0, 1000)}`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 50);
      });
    }
  }

  response(id: number | string): Promise<Record<string, any>> {
    return this.until(() => this.text.find((m) => m.id === id && m.method === undefined));
  }

  request(method: string, params: unknown, id: number | string = this.nextId++): Promise<Record<string, any>> {
    this.socket.send(JSON.stringify({ id, method, params }));
    return this.response(id);
  }

  sendBinary(bytes: Uint8Array): void {
    this.socket.send(bytes, { binary: true });
  }

  close(): void {
    this.socket.close();
  }
}

describe('the binaryFileBlocks path', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-binary-blocks-'));
  const remote = path.join(dir, 'remote');
  const local = path.join(dir, 'local');
  const source = path.join(local, 'source.bin');
  let content: Buffer;
  let agent: RunningAgent;
  let relay: RelayFixture;
  let remoteAgent: RemoteAgentFixture;

  beforeAll(async () => {
    mkdirSync(remote);
    mkdirSync(local);
    content = randomBytes(FILE_BYTES);
    writeFileSync(source, content);
    agent = await startAgent();
    relay = await startRelay();
    remoteAgent = await startRemoteAgent(relay.url, 'binary-blocks-env');
  });
  afterAll(async () => {
    remoteAgent?.stop();
    await Promise.all([relay?.stop(), agent?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('cp takes it up where the agent offers it: blocks go up and come down as raw bytes in binary messages, no base64, SHA-256 equal', async () => {
    const proxy = await startWebSocketCaptureProxy(agent.url);
    try {
      expect(await runCli(['cp', '--url', proxy.url, source, `:${remote}/`])).toMatchObject({ code: 0, stdout: '', stderr: '' });
      expect(sha256(readFileSync(path.join(remote, 'source.bin')))).toBe(sha256(content));
      const writes = decodedBinary(proxy, 'upstream');
      expect(writes.map((m) => m.kind)).toEqual(Array(BLOCKS).fill('fsWriteBlock'));
      const offsets = writes.map((m) => (m.kind === 'fsWriteBlock' ? m.offset : -1)).sort((a, b) => a - b);
      expect(offsets).toEqual(Array.from({ length: BLOCKS }, (_, i) => i * TRANSFER_BLOCK_BYTES));
      expect(writes.reduce((sum, m) => sum + m.chunk.length, 0)).toBe(FILE_BYTES);
      expect(proxy.json('upstream').filter((m) => m.method === 'fs/writeBlock')).toEqual([]);
      // Each binary request is answered by a JSON response on its id.
      const answered = new Set(proxy.json('downstream').filter((m) => m.result !== undefined).map((m) => m.id));
      for (const write of writes) if (write.kind === 'fsWriteBlock') expect(answered.has(write.requestId)).toBe(true);

      const back = path.join(local, 'back.bin');
      const before = proxy.messages.length;
      expect(await runCli(['cp', '--url', proxy.url, `:${path.join(remote, 'source.bin')}`, back])).toMatchObject({ code: 0, stdout: '', stderr: '' });
      expect(sha256(readFileSync(back))).toBe(sha256(content));
      const reads = proxy.messages.slice(before).filter((m) => m.direction === 'downstream' && m.binary).map((m) => decodeBinaryMessage(m.data));
      expect(reads.every((r) => r.ok && r.message.kind === 'fsReadBlockResult')).toBe(true);
      expect(reads.reduce((sum, r) => sum + (r.ok ? r.message.chunk.length : 0), 0)).toBe(FILE_BYTES);
      const downstreamJson = proxy.messages.slice(before).filter((m) => m.direction === 'downstream' && !m.binary).map((m) => JSON.parse(m.data.toString()));
      expect(downstreamJson.filter((m) => typeof m.result?.chunk === 'string')).toEqual([]);
      // The handshake: offered in the result, taken up in initialized.
      const initialized = proxy.json('upstream').filter((m) => m.method === 'initialized');
      expect(initialized.at(-1)).toEqual({ method: 'initialized', params: { binaryOutput: true, binaryFileBlocks: true } });
    } finally {
      await proxy.close();
    }
  });

  it('cp stays on JSON (base64) both ways with an agent that does not offer it, SHA-256 equal', async () => {
    // An older agent: the same agent with the binary paths taken out of its initialize result.
    const proxy = await startWebSocketCaptureProxy(agent.url, {
      rewriteDownstreamText: (text) => text.replace(',"binaryOutput":true,"binaryFileBlocks":true', ''),
    });
    try {
      const target = path.join(remote, 'json.bin');
      expect(await runCli(['cp', '--url', proxy.url, source, `:${target}`])).toMatchObject({ code: 0, stdout: '', stderr: '' });
      const back = path.join(local, 'json-back.bin');
      expect(await runCli(['cp', '--url', proxy.url, `:${target}`, back])).toMatchObject({ code: 0, stdout: '', stderr: '' });
      expect(sha256(readFileSync(target))).toBe(sha256(content));
      expect(sha256(readFileSync(back))).toBe(sha256(content));
      const initialize = proxy.json('downstream').find((m) => m.result?.sessionId !== undefined);
      expect(initialize?.result.capabilities).toEqual({ ptyResize: true, fileTransfer: true });
      expect(proxy.messages.filter((m) => m.binary)).toEqual([]);
      expect(proxy.json('upstream').filter((m) => m.method === 'initialized').map((m) => m.params)).toEqual([{}, {}]);
      expect(proxy.json('upstream').filter((m) => m.method === 'fs/writeBlock')).toHaveLength(BLOCKS);
      expect(proxy.json('downstream').filter((m) => typeof m.result?.chunk === 'string').length).toBeGreaterThanOrEqual(BLOCKS);
    } finally {
      await proxy.close();
    }
  });

  it('is taken up through the relay and Noise: a library upload and download are intact', async () => {
    const client = await connectThroughRelay(relay.url, remoteAgent);
    try {
      expect(client.usesBinaryFileBlocks).toBe(true);
      const target = path.join(remote, 'relay.bin');
      await uploadFile(client.fs, source, target);
      const back = path.join(local, 'relay-back.bin');
      await downloadFile(client.fs, target, back);
      expect(sha256(readFileSync(target))).toBe(sha256(content));
      expect(sha256(readFileSync(back))).toBe(sha256(content));
    } finally {
      client.close();
    }
  });

  it('on the wire: a binary fs/writeBlock goes through the JSON handler (same limits and errors, JSON answer), a binary fs/readBlock result carries eof; anything else is refused', async () => {
    const peer = await RawPeer.connect(agent.url);
    try {
      const init = await peer.request('initialize', { clientName: 'binary-blocks-wire' });
      expect(init.result.capabilities).toEqual({ ptyResize: true, fileTransfer: true, binaryOutput: true, binaryFileBlocks: true });
      // Before it is taken up, a binary message is refused on id -1.
      peer.sendBinary(encodeBinaryWriteBlock(90, 'w', 0, Buffer.from('x'))!);
      expect(await peer.response(-1)).toEqual({ id: -1, error: { code: -32600, message: 'invalid request: unexpected binary message' } });
      peer.socket.send(JSON.stringify({ method: 'initialized', params: { binaryFileBlocks: true } }));

      const target = path.join(remote, 'wire.bin');
      expect((await peer.request('fs/openWrite', { handleId: 'w', path: pathToFileURL(target).href })).error).toBeUndefined();
      peer.sendBinary(encodeBinaryWriteBlock(100, 'w', 6, Buffer.from('world'))!);
      peer.sendBinary(encodeBinaryWriteBlock(101, 'w', 0, Buffer.from('hello '))!);
      expect(await peer.response(100)).toEqual({ id: 100, result: {} });
      expect(await peer.response(101)).toEqual({ id: 101, result: {} });
      // The handler's own errors, as for JSON.
      peer.sendBinary(encodeBinaryWriteBlock(102, 'w', 0, Buffer.alloc(1024 * 1024 + 1))!);
      expect(await peer.response(102)).toEqual({ id: 102, error: { code: -32600, message: 'file write block must be at most 1048576 bytes, got 1048577' } });
      peer.sendBinary(encodeBinaryWriteBlock(103, 'nope', 0, Buffer.from('x'))!);
      expect(await peer.response(103)).toEqual({ id: 103, error: { code: -32004, message: 'unknown write handle `nope`' } });
      peer.sendBinary(encodeBinaryWriteBlock(104, 'w', Number.MAX_SAFE_INTEGER, Buffer.from('x'))!);
      expect(await peer.response(104)).toEqual({ id: 104, error: { code: -32600, message: 'file write block ends past the largest file offset' } });
      // Malformed: answered on its id once that was read, else on -1.
      const bad = encodeBinaryWriteBlock(105, 'w', 0, Buffer.from('x'))!;
      bad[11] = 0xff; // offset above 2^53 - 1
      peer.sendBinary(bad);
      expect(await peer.response(105)).toEqual({ id: 105, error: { code: -32600, message: 'invalid request: malformed binary message: offset-out-of-range' } });
      peer.sendBinary(Buffer.from([0xb1, 2, 1]));
      await peer.until(() => peer.text.find((m) => m.id === -1 && m.error?.message === 'invalid request: malformed binary message: truncated'));
      peer.sendBinary(Buffer.from([0xb1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x41])); // process output is the agent's to send
      await peer.until(() => peer.text.filter((m) => m.id === -1 && m.error?.message === 'invalid request: unexpected binary message').length === 2 || undefined);
      expect((await peer.request('fs/commitWrite', { handleId: 'w' })).error).toBeUndefined();
      expect(readFileSync(target, 'utf8')).toBe('hello world');

      // fs/readBlock answers in a binary message (numeric id), in JSON for a string id.
      expect((await peer.request('fs/open', { handleId: 'r', path: pathToFileURL(target).href })).error).toBeUndefined();
      const readCount = peer.binary.length;
      peer.socket.send(JSON.stringify({ id: 200, method: 'fs/readBlock', params: { handleId: 'r', offset: 0, len: 5 } }));
      peer.socket.send(JSON.stringify({ id: 201, method: 'fs/readBlock', params: { handleId: 'r', offset: 6, len: 100 } }));
      const results = await peer.until(() => (peer.binary.length >= readCount + 2 ? peer.binary.slice(readCount) : undefined));
      const decoded = results.map((bytes) => decodeBinaryMessage(bytes));
      expect(decoded).toEqual([
        { ok: true, message: { kind: 'fsReadBlockResult', requestId: 200, eof: false, chunk: Buffer.from('hello') } },
        { ok: true, message: { kind: 'fsReadBlockResult', requestId: 201, eof: true, chunk: Buffer.from('world') } },
      ]);
      expect(await peer.request('fs/readBlock', { handleId: 'r', offset: 0, len: 5 }, 'text-id')).toEqual({
        id: 'text-id',
        result: { chunk: Buffer.from('hello').toString('base64'), eof: false },
      });
      expect((await peer.request('fs/readBlock', { handleId: 'r', offset: 0, len: 0 })).error).toEqual({ code: -32600, message: 'file read block length must be between 1 and 1048576' });
    } finally {
      peer.close();
    }
    const deadline = Date.now() + 5_000;
    while (readdirSync(remote).some((name) => TEMPORARY_NAME.test(name)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(readdirSync(remote).filter((name) => TEMPORARY_NAME.test(name))).toEqual([]);
    expect(existsSync(path.join(remote, 'nope'))).toBe(false);
  });
});
