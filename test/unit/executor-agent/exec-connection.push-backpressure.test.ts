import { describe, expect, it } from 'vitest';
import type { JsonRpcConnection } from '../../../src/jsonrpc/connection.js';
import { ExecConnection } from '../../../executor-agent/exec-connection.js';
import { DEFAULT_AGENT_CONFIG } from '../../../executor-agent/agent-config.js';
import type { Session } from '../../../executor-agent/session.js';
import type { SessionRegistry } from '../../../executor-agent/session-registry.js';
import { createLogger } from '../../../src/logging/logger.js';

/** A connection whose notifications stay queued until `flush()`: a client that reads nothing. */
function stalledRpc() {
  const sent: Array<{ method: string; params: string }> = [];
  const waiting: Array<() => void> = [];
  const rpc = {
    closed: false,
    transport: { kind: 'memory' },
    setRequestHandler: () => undefined,
    setNotificationHandler: () => undefined,
    setBinaryMessageHandler: () => undefined,
    onResponse: () => undefined,
    onClose: () => undefined,
    notifySerialized: (method: string, params: string) => {
      sent.push({ method, params });
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
    notify: (method: string, params: unknown) => {
      sent.push({ method, params: JSON.stringify(params) });
      return new Promise<void>((resolve) => waiting.push(resolve));
    },
  };
  return { rpc: rpc as unknown as JsonRpcConnection, sent, flush: () => waiting.splice(0).forEach((resolve) => resolve()) };
}

function fakeSession() {
  const state = { paused: false, changes: [] as boolean[], coalescedFlushes: 0 };
  const session = {
    get isOutputPaused() {
      return state.paused;
    },
    setOutputPaused(paused: boolean) {
      if (paused === state.paused) return;
      state.paused = paused;
      state.changes.push(paused);
    },
    flushCoalescedOutput() {
      state.coalescedFlushes++;
    },
  };
  return { session: session as unknown as Session, state };
}

function connection(maxQueuedPushBytes: number) {
  const stalled = stalledRpc();
  const config = { ...DEFAULT_AGENT_CONFIG, maxQueuedPushBytes };
  const conn = new ExecConnection(stalled.rpc, {} as SessionRegistry, config, [], createLogger('test', 'silent'));
  const { session, state } = fakeSession();
  (conn as unknown as { session: Session }).session = session;
  return { conn, ...stalled, state };
}

const output = (seq: number, bytes: number) => ({ type: 'output' as const, seq, stream: 'stdout' as const, chunk: Buffer.alloc(bytes) });

describe('ExecConnection push backpressure', () => {
  it('queues a full chunk that arrives while output still flows, even past twice the bound, and pauses', () => {
    const { conn, sent, state } = connection(64 * 1024);
    conn.pushProcessEvent('p', output(1, 40 * 1024)); // ~53 KiB queued: below the bound, still flowing
    expect(state.paused).toBe(false);
    conn.pushProcessEvent('p', output(2, 64 * 1024)); // ~140 KiB: past 2x, but output was flowing
    expect(sent.map((m) => JSON.parse(m.params).seq)).toEqual([1, 2]);
    expect(state.paused).toBe(true);
  });

  it('drops an event in flight past twice the bound once paused, and resumes when the queue drains to half', () => {
    const { conn, sent, state, flush } = connection(64 * 1024);
    conn.pushProcessEvent('p', output(1, 60 * 1024)); // ~80 KiB: paused
    expect(state.paused).toBe(true);
    conn.pushProcessEvent('p', output(2, 40 * 1024)); // ~134 KiB: past 2x while paused: dropped
    expect(sent.map((m) => JSON.parse(m.params).seq)).toEqual([1]);
    conn.pushProcessEvent('p', { type: 'exited', seq: 3, exitCode: 0, sandboxDenied: false }); // small: fits
    expect(sent.map((m) => JSON.parse(m.params).seq)).toEqual([1, 3]);
    flush();
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      expect(state.changes).toEqual([true, false]);
    });
  });

  it('reports sends in flight, and has the session publish coalesced output once every push settled', async () => {
    const { conn, state, flush } = connection(64 * 1024);
    expect(conn.outputInFlight).toBe(false);
    conn.pushProcessEvent('p', output(1, 1024));
    conn.pushProcessEvent('p', output(2, 1024));
    expect(conn.outputInFlight).toBe(true);
    expect(state.coalescedFlushes).toBe(0);
    flush();
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(conn.outputInFlight).toBe(false);
    expect(state.coalescedFlushes).toBe(1);
  });
});
