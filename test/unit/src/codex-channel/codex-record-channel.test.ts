import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { decodeCodexRelayFrame, type CodexRelayBody } from '../../../../src/codex-relay-frame/codex-relay-frame.js';
import { CodexChannelError } from '../../../../src/codex-channel/codex-channel-error.js';
import { CODEX_MISSING_FRAME_TIMEOUT_MS, CODEX_PROTOCOL_ERROR_RESET_REASON } from '../../../../src/codex-channel/codex-channel-limits.js';
import { CodexResponderChannel } from '../../../../src/codex-channel/codex-responder-channel.js';
import type { CodexFramePort } from '../../../../src/codex-channel/codex-record-channel.js';
import { messageRecords } from '../../../../src/codex-channel/message-records.js';
import { HybridTransport } from '../../../../src/noise-hybrid/hybrid-transport.js';

/**
 * The record layer's bound on a missing Data frame (the responder role; the initiator shares the
 * code): a hole filled in time changes nothing; one open past the limit resets the stream towards
 * the peer and ends the channel with `frame-lost`; a channel closed with a hole open leaves no timer.
 */
describe('CodexRecordChannel: a missing data frame', () => {
  let sent: CodexRelayBody[];
  let channel: CodexResponderChannel;
  let peer: HybridTransport;
  let received: string[];
  let closedWith: Array<Error | undefined>;
  let ended: number;

  beforeEach(() => {
    vi.useFakeTimers();
    const toResponder = randomBytes(32);
    const toInitiator = randomBytes(32);
    const hash = randomBytes(32);
    peer = new HybridTransport(toResponder, toInitiator, hash);
    sent = [];
    const port: CodexFramePort = {
      open: true,
      bufferedAmount: 0,
      send: async (frame) => {
        const decoded = decodeCodexRelayFrame(frame);
        if (!decoded.ok) throw new Error('the channel sent a broken frame');
        sent.push(decoded.frame.body);
      },
      pause: () => undefined,
      resume: () => undefined,
    };
    ended = 0;
    channel = new CodexResponderChannel(port, 'stream-1', new HybridTransport(toInitiator, toResponder, hash), 1 << 20, 'hyb1:test', () => ended++);
    received = [];
    closedWith = [];
    channel.onMessage((message) => received.push(message));
    channel.onClose((error) => closedWith.push(error));
  });
  afterEach(() => {
    channel.close();
    vi.useRealTimers();
  });

  /** The peer's next messages as Data frame bodies, seq from `firstSeq` (one record each). */
  function dataFrames(messages: string[], firstSeq: number): CodexRelayBody[] {
    return messages.map((message, index) => {
      const [record, ...rest] = messageRecords(message);
      expect(rest).toEqual([]);
      return { type: 'data', seq: firstSeq + index, payload: peer.encrypt(record!) };
    });
  }

  it('a hole filled in time: every message in order, no reset, no timer left', () => {
    const [m0, m1, m2] = dataFrames(['{"id":0}', '{"id":1}', '{"id":2}'], 0);
    channel.receiveBody(m1!);
    channel.receiveBody(m2!);
    expect(received).toEqual([]);
    vi.advanceTimersByTime(CODEX_MISSING_FRAME_TIMEOUT_MS - 1);
    channel.receiveBody(m0!);
    expect(received).toEqual(['{"id":0}', '{"id":1}', '{"id":2}']);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10 * CODEX_MISSING_FRAME_TIMEOUT_MS);
    expect(channel.closed).toBe(false);
    expect(sent).toEqual([]);
  });

  it(`a hole open ${CODEX_MISSING_FRAME_TIMEOUT_MS} ms: the stream is reset towards the peer and the channel ends with frame-lost`, async () => {
    const [m0, , m2, m3] = dataFrames(['{"id":0}', '{"id":1}', '{"id":2}', '{"id":3}'], 0);
    channel.receiveBody(m0!);
    channel.receiveBody(m2!);
    channel.receiveBody(m3!);
    vi.advanceTimersByTime(CODEX_MISSING_FRAME_TIMEOUT_MS - 1);
    expect(channel.closed).toBe(false);
    vi.advanceTimersByTime(1);
    await Promise.resolve();
    expect(channel.closed).toBe(true);
    expect(received).toEqual(['{"id":0}']);
    expect(sent).toEqual([{ type: 'reset', reason: CODEX_PROTOCOL_ERROR_RESET_REASON }]);
    expect(ended).toBe(1);
    expect(closedWith).toHaveLength(1);
    const error = closedWith[0] as CodexChannelError;
    expect(error).toBeInstanceOf(CodexChannelError);
    expect(error.failure).toBe('frame-lost');
    expect(error.message).toMatch(/^data frame 1 never arrived: 2 later frames waited for it \d+ ms$/);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a channel closed with a hole open: no timer left, ended by the close alone', () => {
    const [, m1] = dataFrames(['{"id":0}', '{"id":1}'], 0);
    channel.receiveBody(m1!);
    expect(vi.getTimerCount()).toBe(1);
    channel.close();
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(10 * CODEX_MISSING_FRAME_TIMEOUT_MS);
    expect(closedWith).toEqual([undefined]);
    expect(ended).toBe(1);
  });

  it('a peer reset with a hole open: no timer left', () => {
    const [, m1] = dataFrames(['{"id":0}', '{"id":1}'], 0);
    channel.receiveBody(m1!);
    channel.receiveBody({ type: 'reset', reason: 'client_closed' });
    expect(vi.getTimerCount()).toBe(0);
    expect((closedWith[0] as CodexChannelError).failure).toBe('reset');
  });
});
