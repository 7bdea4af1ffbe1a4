import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import os from 'node:os';
import { RawRpcClient } from '../support/raw-rpc-client.js';
import { startAgent, type RunningAgent } from '../support/agent-harness.js';

const cwd = pathToFileURL(os.tmpdir()).href;
const MAX_MESSAGE_BYTES = 256 * 1024;

describe('bad input is answered with the right error and the agent keeps serving', () => {
  let running: RunningAgent;
  let client: RawRpcClient;

  beforeAll(async () => {
    running = await startAgent({ maxMessageBytes: MAX_MESSAGE_BYTES });
    client = await RawRpcClient.connect(running.url);
  });
  afterAll(async () => {
    client.close();
    await running.stop();
  });

  it('refuses methods before initialize with -32600', async () => {
    const early = await client.request('process/start', { processId: 'p', argv: ['true'], cwd, env: {}, tty: false });
    expect(early.error).toMatchObject({ code: -32600 });
    expect(early.error!.message).toMatch(/initialize/);
    await client.initialize();
    const again = await client.request('initialize', { clientName: 'twice' });
    expect(again.error?.code).toBe(-32600);
  });

  it('refuses bad terminal sizes and resizing what has no terminal', async () => {
    const start = (processId: string, extra: Record<string, unknown>) =>
      client.request('process/start', { processId, argv: ['sleep', '5'], cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, tty: true, ...extra });
    for (const ptySize of [{ cols: 0, rows: 24 }, { cols: 80, rows: 4097 }, { cols: 80.5, rows: 24 }, { cols: 80 }, 'big']) {
      const refused = await start('badsize', { ptySize });
      expect(refused.error, JSON.stringify(ptySize)).toMatchObject({ code: -32602 });
      expect(refused.error!.message).toMatch(/ptySize/);
    }
    expect((await client.request('process/read', { processId: 'badsize', afterSeq: 0 })).error?.code).toBe(-32004);
    for (const params of [{ processId: 'x', cols: 5000, rows: 24 }, { processId: 'x', cols: 80, rows: 0 }, { processId: 'x', cols: 80 }, { cols: 80, rows: 24 }]) {
      const refused = await client.request('process/resizePty', params);
      expect(refused.error, JSON.stringify(params)).toMatchObject({ code: -32602 });
    }
    expect((await client.request('process/resizePty', { processId: 'nosuch', cols: 80, rows: 24 })).error).toMatchObject({ code: -32004, message: 'unknown process: nosuch' });
    await client.request('process/start', { processId: 'notty', argv: ['sleep', '5'], cwd, env: {}, tty: false });
    const notty = await client.request('process/resizePty', { processId: 'notty', cols: 80, rows: 24 });
    expect(notty.error).toMatchObject({ code: -32600 });
    expect(notty.error!.message).toMatch(/without tty/);
    await client.request('process/terminate', { processId: 'notty' });
  });

  it('answers malformed JSON with id -1 and -32600', async () => {
    client.sendRaw('{"id": 5, "method": ');
    const reply = await client.waitFor((m) => m.id === -1 && /malformed JSON/.test(m.error?.message ?? ''));
    expect(reply.error!.code).toBe(-32600);
    client.sendRaw('[1,2,3]');
    await client.waitFor((m) => m.id === -1 && /JSON object/.test(m.error?.message ?? ''));
  });

  it('answers an unknown method with -32601', async () => {
    const reply = await client.request('process/explode', {});
    expect(reply.error).toMatchObject({ code: -32601, message: 'method not found: process/explode' });
  });

  it.each([
    ['missing processId', { argv: ['true'], cwd }, /processId: missing required field/],
    ['missing argv', { processId: 'x', cwd }, /argv: missing required field/],
    ['empty argv', { processId: 'x', argv: [], cwd }, /argv: must not be empty/],
    ['relative cwd', { processId: 'x', argv: ['true'], cwd: 'tmp/here' }, /cwd: expected an absolute file:\/\/ URI/],
    ['native cwd', { processId: 'x', argv: ['true'], cwd: '/tmp' }, /cwd: expected a file:\/\/ URI, got a native path/],
    ['wrong type', { processId: 'x', argv: 'true', cwd }, /argv: expected array/],
    ['NUL in argument', { processId: 'x', argv: ['echo', 'a\u0000b'], cwd }, /argv.1: argument contains a NUL byte/],
  ])('rejects process/start with %s as -32602 naming the field', async (_name, params, message) => {
    const reply = await client.request('process/start', params);
    expect(reply.error?.code).toBe(-32602);
    expect(reply.error?.message).toMatch(message);
  });

  it('rejects bad base64 in process/write', async () => {
    const reply = await client.request('process/write', { processId: 'x', chunk: '%%%', writeId: 'w' });
    expect(reply.error).toMatchObject({ code: -32602 });
    expect(reply.error!.message).toMatch(/chunk: not valid base64/);
  });

  it('answers a read of an unknown process with -32004', async () => {
    const reply = await client.request('process/read', { processId: 'nobody', afterSeq: 0 });
    expect(reply.error).toMatchObject({ code: -32004, message: 'unknown process: nobody' });
  });

  it('answers a cwd that does not exist with -32004', async () => {
    const reply = await client.request('process/start', { processId: 'nocwd', argv: ['true'], cwd: 'file:///definitely/not/here', env: {} });
    expect(reply.error?.code).toBe(-32004);
  });

  it('answers a command that does not exist with -32603, the reason and data {reason: command_not_found}', async () => {
    const reply = await client.request('process/start', { processId: 'nocmd', argv: ['no-such-command-xyz'], cwd, env: {} });
    expect(reply.error).toEqual({ code: -32603, message: 'failed to start process: no-such-command-xyz: command not found', data: { reason: 'command_not_found' } });
    const missingCwd = await client.request('process/start', { processId: 'nocwd2', argv: ['true'], cwd: 'file:///definitely/not/here', env: {} });
    expect(missingCwd.error).not.toHaveProperty('data');
  });

  it('answers an oversized message with -32600 and keeps the connection', async () => {
    client.sendRaw(JSON.stringify({ id: 77, method: 'process/write', params: { chunk: 'A'.repeat(MAX_MESSAGE_BYTES) } }));
    const reply = await client.waitFor((m) => m.id === -1 && /exceeds/.test(m.error?.message ?? ''));
    expect(reply.error!.code).toBe(-32600);
    const ok = await client.request('process/terminate', { processId: 'none' });
    expect(ok.result).toEqual({ running: false });
  });

  it('answers notifications other than initialized with an error on id -1', async () => {
    client.notify('process/start', { processId: 'sneaky' });
    const reply = await client.waitFor((m) => m.id === -1 && /unexpected notification: process\/start/.test(m.error?.message ?? ''));
    expect(reply.error!.code).toBe(-32600);
  });

  it('keeps serving other connections throughout', async () => {
    const other = await RawRpcClient.connect(running.url);
    await other.initialize();
    const started = await other.request('process/start', { processId: 'fine', argv: ['true'], cwd, env: {} });
    expect(started.result).toEqual({ processId: 'fine' });
    other.close();
  });
});
