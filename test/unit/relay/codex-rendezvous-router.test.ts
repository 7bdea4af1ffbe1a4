import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { CodexRendezvousRouter, type RendezvousSocket } from '../../../relay/codex-rendezvous-router.js';
import { DEFAULT_RELAY_LIMITS, type RelayLimits } from '../../../relay/relay-config.js';
import { decodeCodexRelayFrame, encodeCodexRelayFrame, type CodexRelayBody } from '../../../src/codex-relay-frame/codex-relay-frame.js';
import { createLogger } from '../../../src/logging/logger.js';
import { NO_RELAY_EVENTS, type RelayEvents } from '../../../relay/relay-events.js';

/** A socket that records the frames sent to it. */
class FakeSocket implements RendezvousSocket {
  readyState: WebSocket['readyState'] = WebSocket.OPEN;
  bufferedAmount = 0;
  paused = false;
  readonly sent: Buffer[] = [];
  closedWith: number | undefined;
  send(data: unknown): void {
    this.sent.push(Buffer.from(data as Uint8Array));
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  close(code?: number): void {
    this.closedWith = code;
  }
  terminate(): void {}
  /** What was sent, as `type:streamId[:reason]`. */
  frames(): string[] {
    return this.sent.map((bytes) => {
      const decoded = decodeCodexRelayFrame(bytes);
      if (!decoded.ok) return 'undecodable';
      const { streamId, body } = decoded.frame;
      return body.type === 'reset' ? `reset:${streamId}:${body.reason}` : `${body.type}:${streamId}`;
    });
  }
}

const frame = (streamId: string, body: CodexRelayBody) => Buffer.from(encodeCodexRelayFrame({ streamId, body }));
const handshake = (streamId: string) => frame(streamId, { type: 'handshake', payload: Buffer.from('msg') });
const data = (streamId: string, seq = 0) => frame(streamId, { type: 'data', seq, payload: Buffer.from('record') });
const reset = (streamId: string, reason = 'noise_relay_protocol_error') => frame(streamId, { type: 'reset', reason });

function setup(limits: Partial<RelayLimits> = {}, clientTokens = 1) {
  const router = new CodexRendezvousRouter({ ...DEFAULT_RELAY_LIMITS, ...limits }, createLogger('test', 'silent'), () => clientTokens);
  const executorSocket = new FakeSocket();
  const executor = router.executorConnected(executorSocket, 'env', 'reg-1', 'exec-cred');
  const harness = (credential = 'client-cred') => {
    const socket = new FakeSocket();
    return { socket, link: router.harnessConnected(socket, 'env', 'reg-1', credential) };
  };
  return { router, executor, executorSocket, harness };
}

describe('CodexRendezvousRouter', () => {
  it('routes a handshake, its answer and data both ways as the bytes received; resume is not forwarded', () => {
    const { router, executor, executorSocket, harness } = setup();
    const h = harness();
    router.fromHarness(h.link, frame('s1', { type: 'resume', nextSeq: 0 }));
    router.fromHarness(h.link, handshake('s1'));
    expect(executorSocket.sent).toEqual([handshake('s1')]);
    router.fromExecutor(executor, handshake('s1'));
    router.fromHarness(h.link, data('s1'));
    router.fromExecutor(executor, data('s1', 0));
    expect(executorSocket.frames()).toEqual(['handshake:s1', 'data:s1']);
    expect(h.socket.frames()).toEqual(['handshake:s1', 'data:s1']);
  });

  it('refuses data on a stream not accepted yet, or of another socket, without forwarding it', () => {
    const { router, executor, executorSocket, harness } = setup();
    const a = harness();
    const b = harness();
    router.fromHarness(a.link, handshake('s1'));
    router.fromHarness(a.link, data('s1'));
    router.fromExecutor(executor, handshake('s1'));
    router.fromHarness(b.link, data('s1'));
    router.fromHarness(b.link, handshake('s1'));
    expect(executorSocket.frames()).toEqual(['handshake:s1']);
    expect(a.socket.frames()).toEqual(['reset:s1:unknown_stream', 'handshake:s1']);
    expect(b.socket.frames()).toEqual(['reset:s1:unknown_stream', 'reset:s1:stream_id_in_use']);
  });

  it('bounds pending handshakes per harness socket and per executor (32), and streams per executor (128)', () => {
    const { router, executor, executorSocket, harness } = setup({ codexMaxPendingHandshakesPerHarnessSocket: 64, codexMaxStreamsPerHarnessSocket: 1000 });
    const h = harness();
    for (let i = 0; i < 33; i++) router.fromHarness(h.link, handshake(`p${i}`));
    expect(executorSocket.sent.length).toBe(32);
    expect(h.socket.frames()).toEqual(['reset:p32:too_many_pending_opens']);
    for (let i = 0; i < 32; i++) router.fromExecutor(executor, handshake(`p${i}`));
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 32; i++) {
        router.fromHarness(h.link, handshake(`r${round}-${i}`));
        router.fromExecutor(executor, handshake(`r${round}-${i}`));
      }
    }
    expect(executor.routes.size).toBe(128);
    router.fromHarness(h.link, handshake('one-too-many'));
    expect(h.socket.frames().at(-1)).toBe('reset:one-too-many:too_many_streams');

    const small = setup();
    const s = small.harness();
    for (let i = 0; i < 5; i++) small.router.fromHarness(s.link, handshake(`q${i}`));
    expect(s.socket.frames()).toEqual(['reset:q4:too_many_pending_opens']);
  });

  it('counts failed handshakes: a socket, then a token, then the executor as a whole stop being forwarded new ones', () => {
    const { router, executor, executorSocket, harness } = setup({}, 2);
    const fail = (h: ReturnType<typeof harness>, id: string) => {
      router.fromHarness(h.link, handshake(id));
      router.fromExecutor(executor, reset(id));
    };
    // One socket: two failures, then no more.
    const a = harness('token-a');
    fail(a, 'a1');
    fail(a, 'a2');
    router.fromHarness(a.link, handshake('a3'));
    expect(a.socket.frames().at(-1)).toBe('reset:a3:too_many_failed_handshakes');
    // The same token on a new socket: its third failure cools it down.
    const a2 = harness('token-a');
    fail(a2, 'a4');
    router.fromHarness(a2.link, handshake('a5'));
    expect(a2.socket.frames().at(-1)).toBe('reset:a5:too_many_failed_handshakes');
    // Other tokens still pass until the executor has seen 6 failures in its window.
    const b = harness('token-b');
    fail(b, 'b1');
    fail(b, 'b2');
    const c = harness('token-c');
    fail(c, 'c1');
    expect(executor.failures.length).toBe(6);
    const d = harness('token-d');
    router.fromHarness(d.link, handshake('d1'));
    expect(d.socket.frames()).toEqual(['reset:d1:too_many_failed_handshakes']);
    expect(executorSocket.frames().filter((f) => f.startsWith('handshake')).length).toBe(6);
  });

  it('a token holds at most its share of an executor when several tokens may connect clients', () => {
    const { router, executor, harness } = setup({ codexMaxStreamsPerHarnessSocket: 1000, codexMaxPendingHandshakesPerHarnessSocket: 1000 }, 2);
    const h = harness('greedy');
    for (let i = 0; i < 17; i++) router.fromHarness(h.link, handshake(`g${i}`));
    expect(h.socket.frames()).toEqual(['reset:g16:too_many_pending_opens']);
    expect(executor.pendingHandshakes).toBe(16);
    const other = harness('other');
    router.fromHarness(other.link, handshake('o1'));
    expect(other.socket.frames()).toEqual([]);
  });

  it('tells the executor when a harness socket goes, and the harnesses when the executor goes', () => {
    const { router, executor, executorSocket, harness } = setup();
    const h = harness();
    router.fromHarness(h.link, handshake('s1'));
    router.fromExecutor(executor, handshake('s1'));
    router.fromHarness(h.link, handshake('s2'));
    router.harnessClosed(h.link);
    expect(executorSocket.frames().slice(-2).sort()).toEqual(['reset:s1:client_gone', 'reset:s2:client_gone']);
    expect(executor.routes.size).toBe(0);
    expect(executor.pendingHandshakes).toBe(0);
    const h2 = harness();
    router.fromHarness(h2.link, handshake('s3'));
    router.executorClosed(executor);
    expect(h2.socket.frames()).toEqual(['reset:s3:executor_unavailable']);
    router.fromHarness(h2.link, handshake('s4'));
    expect(h2.socket.frames().at(-1)).toBe('reset:s4:executor_unavailable');
  });

  it('drops frames over the message limit and frames it cannot read, and answers nothing to them', () => {
    const { router, executorSocket, harness } = setup({ codexMaxMessageBytes: 1024 });
    const h = harness();
    router.fromHarness(h.link, frame('big', { type: 'handshake', payload: Buffer.alloc(2000) }));
    router.fromHarness(h.link, Buffer.from([0xff, 0xff, 0xff]));
    expect(executorSocket.sent).toEqual([]);
    expect(h.socket.sent).toEqual([]);
  });

  it('a handshake not answered within the timeout is reset on both sides', async () => {
    const { router, executorSocket, harness } = setup({ codexHandshakeTimeoutMs: 30 });
    const h = harness();
    router.fromHarness(h.link, handshake('slow'));
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(executorSocket.frames()).toEqual(['handshake:slow', 'reset:slow:handshake_timeout']);
    expect(h.socket.frames()).toEqual(['reset:slow:handshake_timeout']);
  });

  it('stops reading a source while the socket it feeds holds too much', async () => {
    const { router, executor, executorSocket, harness } = setup({ maxQueuedBytesPerSocket: 100 });
    const h = harness();
    router.fromHarness(h.link, handshake('s1'));
    router.fromExecutor(executor, handshake('s1'));
    h.socket.bufferedAmount = 1000;
    router.fromExecutor(executor, data('s1'));
    expect(executorSocket.paused).toBe(true);
    h.socket.bufferedAmount = 0;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(executorSocket.paused).toBe(false);
    router.stop();
  });

  it('resets a stream with no frame either way for the idle timeout, on both sides', async () => {
    const { router, executor, executorSocket, harness } = setup({ idleTimeoutMs: 60 });
    const h = harness();
    router.fromHarness(h.link, handshake('idle'));
    router.fromExecutor(executor, handshake('idle'));
    router.fromHarness(h.link, handshake('busy'));
    router.fromExecutor(executor, handshake('busy'));
    for (let i = 0; i < 8; i++) {
      await new Promise((resolve) => setTimeout(resolve, 15));
      router.fromHarness(h.link, data('busy', i));
    }
    expect(executorSocket.frames()).toContain('reset:idle:idle_timeout');
    expect(h.socket.frames()).toContain('reset:idle:idle_timeout');
    expect([...executor.routes.keys()]).toEqual(['busy']);
    router.stop();
  });

  it('a token holds at most its share of the relay\'s harness sockets when several tokens may connect clients', () => {
    const { router, harness } = setup({ maxClients: 8, tokenShareOfRelay: 0.25 }, 2);
    harness('t');
    expect(router.harnessRefusal('env', 'reg-1', 't')).toBeNull();
    harness('t');
    expect(router.harnessRefusal('env', 'reg-1', 't')).toMatchObject({ status: 503, reason: 'route_unavailable' });
    expect(router.harnessRefusal('env', 'reg-1', 'u')).toBeNull();
    expect(router.harnessRefusal('env', 'reg-2', 'u')).toMatchObject({ status: 403, reason: 'unexpected_executor_registration_id' });
    expect(router.harnessRefusal('nope', 'reg-1', 'u')).toMatchObject({ status: 404, reason: 'unknown_route' });
    router.stop();
  });

  it('reports to the relay metrics with fixed labels only, security profile pq_hybrid: streams opened, accepted, ended, resets, routed and dropped frames', () => {
    const seen: string[] = [];
    const events: RelayEvents = {
      ...NO_RELAY_EVENTS,
      streamOpened: (profile) => seen.push(`opened:${profile}`),
      streamAccepted: (_ms, profile) => seen.push(`accepted:${profile}`),
      streamEnded: (result, profile) => seen.push(`ended:${result}:${profile}`),
      reset: (reason) => seen.push(`reset:${reason}`),
      frameRouted: (direction, _bytes, profile) => seen.push(`routed:${direction}:${profile}`),
      frameDropped: (reason) => seen.push(`dropped:${reason}`),
    };
    const router = new CodexRendezvousRouter(DEFAULT_RELAY_LIMITS, createLogger('test', 'silent'), () => 1, events);
    const executor = router.executorConnected(new FakeSocket(), 'env', 'reg-1', 'e');
    const h = router.harnessConnected(new FakeSocket(), 'env', 'reg-1', 'c');
    router.fromHarness(h, handshake('s1'));
    router.fromExecutor(executor, handshake('s1'));
    router.fromHarness(h, reset('s1', 'client_closed'));
    router.fromHarness(h, data('s2'));
    router.fromExecutor(executor, data('s3'));
    router.fromHarness(h, Buffer.from([1, 2, 3]));
    expect(seen).toEqual([
      'opened:pq_hybrid',
      'routed:client_to_executor:pq_hybrid',
      'accepted:pq_hybrid',
      'routed:executor_to_client:pq_hybrid',
      'ended:closed:pq_hybrid',
      'routed:client_to_executor:pq_hybrid',
      'reset:unknown_stream',
      'dropped:no_route',
      'dropped:invalid',
    ]);
    router.stop();
  });

  it('closes the sockets of a revoked token after resetting their streams', () => {
    const { router, executor, executorSocket, harness } = setup();
    const kept = harness('kept');
    const revoked = harness('revoked');
    router.fromHarness(kept.link, handshake('k1'));
    router.fromHarness(revoked.link, handshake('r1'));
    router.fromExecutor(executor, handshake('r1'));
    expect(router.revoke((credentialId) => credentialId !== 'revoked')).toBe(1);
    expect(revoked.socket.closedWith).toBe(4003);
    expect(revoked.socket.frames().at(-1)).toBe('reset:r1:credential_revoked');
    expect(executorSocket.frames().at(-1)).toBe('reset:r1:credential_revoked');
    expect(kept.socket.closedWith).toBeUndefined();
    expect([...executor.routes.keys()]).toEqual(['k1']);
    expect(router.revoke((credentialId, role) => role !== 'executor')).toBe(1);
    expect(executorSocket.closedWith).toBe(4003);
    expect(kept.socket.frames()).toEqual(['reset:k1:credential_revoked']);
    expect(router.hasLiveExecutor('env')).toBe(false);
    router.stop();
  });

  describe('in a relay fleet', () => {
    /** A harness socket here whose executor another instance holds: what it publishes there, and what the fleet hears. */
    function harnessElsewhere(limits: Partial<RelayLimits> = {}, events: RelayEvents = NO_RELAY_EVENTS) {
      const router = new CodexRendezvousRouter({ ...DEFAULT_RELAY_LIMITS, ...limits }, createLogger('test', 'silent'), () => 1, events);
      const published: Buffer[] = [];
      const opened: string[] = [];
      const closed: boolean[] = [];
      let up = true;
      const socket = new FakeSocket();
      const link = router.harnessConnected(socket, 'env', 'reg-1', 'client-cred', {
        send: (bytes) => (up ? (published.push(Buffer.from(bytes)), true) : false),
        streamOpened: (_link, streamId) => opened.push(streamId),
        clientClosed: (detach) => closed.push(detach),
      });
      const publishedFrames = () => {
        const recorder = new FakeSocket();
        for (const bytes of published) recorder.send(bytes);
        return recorder.frames();
      };
      return { router, socket, link, publishedFrames, opened, closed, down: () => (up = false) };
    }

    it('a harness socket here reaches an executor held elsewhere: its handshake and data go out, the executor\'s frames come back', () => {
      const { router, socket, link, publishedFrames, opened } = harnessElsewhere();
      expect(router.harnessRefusal('env', 'reg-1', 'client-cred')).toMatchObject({ reason: 'unknown_route' });
      expect(router.harnessRefusal('env', 'reg-1', 'client-cred', true)).toBeNull();
      router.fromHarness(link, handshake('s1'));
      // Data before the executor's answer is refused here, not published.
      router.fromHarness(link, data('s1'));
      expect(socket.frames()).toEqual(['reset:s1:unknown_stream']);
      expect(router.fromExecutorElsewhere(link, handshake('s1'))).toBe(true);
      router.fromHarness(link, data('s1'));
      expect(router.fromExecutorElsewhere(link, data('s1', 0))).toBe(true);
      expect(publishedFrames()).toEqual(['handshake:s1', 'data:s1']);
      expect(opened).toEqual(['s1']);
      expect(socket.frames()).toEqual(['reset:s1:unknown_stream', 'handshake:s1', 'data:s1']);
      // Not a codex frame, or a stream this socket does not carry: nothing reaches the harness.
      expect(router.fromExecutorElsewhere(link, Buffer.from('garbage'))).toBe(false);
      expect(router.fromExecutorElsewhere(link, data('other'))).toBe(true);
      expect(socket.frames()).toHaveLength(3);
      router.stop();
    });

    it('the harness socket\'s own limits apply here: streams, pending handshakes, failed handshakes; a dead holder refuses at once', () => {
      const { router, socket, link, publishedFrames } = harnessElsewhere({ codexMaxStreamsPerHarnessSocket: 3, codexMaxPendingHandshakesPerHarnessSocket: 2 });
      router.fromHarness(link, handshake('p1'));
      router.fromHarness(link, handshake('p2'));
      router.fromHarness(link, handshake('p3'));
      expect(socket.frames()).toEqual(['reset:p3:too_many_pending_opens']);
      router.fromExecutorElsewhere(link, handshake('p1'));
      router.fromHarness(link, handshake('p3'));
      router.fromHarness(link, handshake('p4'));
      expect(socket.frames().slice(1)).toEqual(['handshake:p1', 'reset:p4:too_many_streams']);
      expect(publishedFrames()).toEqual(['handshake:p1', 'handshake:p2', 'handshake:p3']);
      // Two handshakes reset by the executor: the socket's next one is refused here.
      router.fromExecutorElsewhere(link, reset('p2'));
      router.fromExecutorElsewhere(link, reset('p3'));
      router.fromHarness(link, handshake('p5'));
      expect(socket.frames().at(-1)).toBe('reset:p5:too_many_failed_handshakes');
      // The fleet found nobody holding the environment: the stream is refused now, not timed out.
      const other = harnessElsewhere();
      other.router.fromHarness(other.link, handshake('q1'));
      other.router.executorUnavailable(other.link, 'q1');
      expect(other.socket.frames()).toEqual(['reset:q1:executor_unavailable']);
      router.stop();
      other.router.stop();
    });

    it('a frame NATS cannot take is counted as dropped; the socket closing tells the fleet whether streams went through it', () => {
      const events: string[] = [];
      const { router, link, closed, down } = harnessElsewhere({}, { ...NO_RELAY_EVENTS, frameDropped: (reason) => void events.push(reason) });
      down();
      router.fromHarness(link, handshake('s1'));
      expect(events).toEqual(['fleet_unavailable']);
      router.harnessClosed(link);
      expect(closed).toEqual([true]);
      const idle = harnessElsewhere();
      idle.router.harnessClosed(idle.link);
      expect(idle.closed).toEqual([false]);
      router.stop();
      idle.router.stop();
    });

    it('a harness socket of another instance counts against every executor limit here, not against the relay\'s harness sockets', () => {
      const { router, executor, executorSocket } = setup({ maxClients: 1, codexMaxPendingHandshakesPerHarnessSocket: 64, codexMaxStreamsPerHarnessSocket: 1000 });
      const remoteSocket = new FakeSocket();
      const remote = router.remoteHarness(remoteSocket, 'env', 'client-cred')!;
      expect(router.remoteHarness(new FakeSocket(), 'no-such-env', 'client-cred')).toBeNull();
      // The relay's own harness sockets are not taken by it.
      expect(router.harnessRefusal('env', 'reg-1', 'client-cred')).toBeNull();
      for (let i = 0; i < 33; i++) router.fromHarness(remote, handshake(`r${i}`));
      expect(executorSocket.sent.length).toBe(32);
      expect(remoteSocket.frames()).toEqual(['reset:r32:too_many_pending_opens']);
      router.fromExecutor(executor, handshake('r0'));
      expect(remoteSocket.frames().at(-1)).toBe('handshake:r0');
      // Its instance says it closed (detach): its streams are reset towards the executor.
      router.harnessClosed(remote);
      expect(executorSocket.frames().filter((f) => f.startsWith('reset:'))).toHaveLength(32);
      router.stop();
    });

    it('tells the fleet when executor sockets come and go; a newer registration elsewhere closes the one here (4001) and resets its streams', () => {
      const { router, executor, executorSocket, harness } = setup();
      const heard: string[] = [];
      router.watcher = { codexLinkUp: (link) => heard.push(`up:${link.environmentId}:${link.registrationId}`), codexLinkDown: (id) => heard.push(`down:${id}`) };
      const h = harness();
      router.fromHarness(h.link, handshake('s1'));
      router.fromExecutor(executor, handshake('s1'));
      router.releaseEnvironment('env');
      expect(executorSocket.closedWith).toBe(4001);
      expect(h.socket.frames().at(-1)).toBe('reset:s1:executor_replaced');
      expect(router.hasLiveExecutor('env')).toBe(false);
      const next = router.executorConnected(new FakeSocket(), 'env', 'reg-2', 'exec-cred');
      router.executorClosed(next);
      expect(heard).toEqual(['down:env', 'up:env:reg-2', 'down:env']);
      router.stop();
    });
  });
});
