/**
 * The lifecycle both relay registrations share (`RegistrationLifecycle`): `start()` settles on the
 * first registration or a final refusal before it; a final refusal after it, or being replaced,
 * ends the registration for good (stopped, then `onFatal`), with the log line the agent prints.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RegistrationEndedError, RegistrationLifecycle, type RelayRegistrationEvent } from '../../../executor-agent/registration-lifecycle.js';
import { RelayCloseCode } from '../../../src/relay-control/relay-endpoints.js';
import { RelayRefusedError } from '../../../src/relay-link/relay-socket.js';

function lifecycle(replacedBy = 'agent process') {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  const events: RelayRegistrationEvent[] = [];
  const fatal: RegistrationEndedError[] = [];
  let stops = 0;
  const subject = new RegistrationLifecycle(
    { environmentId: 'env-1', replacedBy, logger: pino({ level: 'info' }, sink), onEvent: (event) => events.push(event), onFatal: (error) => fatal.push(error) },
    () => {
      stops += 1;
    },
  );
  return { subject, logs, events, fatal, stops: () => stops };
}

const link = { code: 1006, restarting: false, silent: false };

describe('RegistrationLifecycle', () => {
  it('start() runs the link and resolves on the first registration; later registrations only count', async () => {
    const { subject, events } = lifecycle();
    let linkStarted = false;
    const started = subject.start(() => {
      linkStarted = true;
    });
    expect(linkStarted).toBe(true);
    subject.registered(12);
    await expect(started).resolves.toBeUndefined();
    subject.registered(5);
    expect(events).toEqual([
      { type: 'registered', durationMs: 12 },
      { type: 'registered', durationMs: 5 },
    ]);
  });

  it('a final refusal before the first registration rejects start() and logs it, without ending', async () => {
    const { subject, logs, events, fatal, stops } = lifecycle();
    const started = subject.start(() => undefined);
    subject.dialFailed(new Error('relay down'), false, false);
    const refusal = new RelayRefusedError(401, 'unauthorized');
    subject.dialFailed(refusal, true, true);
    await expect(started).rejects.toBe(refusal);
    expect(events).toEqual([
      { type: 'connect-failed', reason: 'unreachable' },
      { type: 'connect-failed', reason: 'refused' },
    ]);
    expect(logs).toEqual([expect.objectContaining({ level: 50, status: 401, msg: refusal.message })]);
    expect(fatal).toEqual([]);
    expect(stops()).toBe(0);
  });

  it('a final refusal after the first registration ends it: stopped, then onFatal with the reason', async () => {
    const { subject, logs, fatal, stops } = lifecycle();
    const started = subject.start(() => undefined);
    subject.registered(1);
    await started;
    subject.dialFailed(new Error('token revoked'), false, true);
    expect(fatal).toEqual([]);
    subject.dialFailed(new Error('token revoked'), true, true);
    expect(stops()).toBe(1);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toBeInstanceOf(RegistrationEndedError);
    expect(fatal[0]!.reason).toBe('refused');
    expect(fatal[0]!.message).toBe('the relay refused to register environment env-1 again: token revoked');
    expect(logs).toEqual([expect.objectContaining({ level: 50, reason: 'refused', msg: fatal[0]!.message })]);
  });

  it('a lost link is re-dialled (restarting or not); being replaced ends it with the caller\'s word', async () => {
    const { subject, events, fatal, stops, logs } = lifecycle('executor');
    void subject.start(() => undefined);
    subject.registered(1);
    expect(subject.linkLost(link)).toBe(true);
    expect(subject.linkLost({ ...link, code: 1012, restarting: true })).toBe(true);
    expect(stops()).toBe(0);
    expect(subject.linkLost({ ...link, code: RelayCloseCode.Replaced })).toBe(false);
    expect(events.slice(1)).toEqual([
      { type: 'disconnected', reason: 'link_lost' },
      { type: 'disconnected', reason: 'relay_restarting' },
      { type: 'disconnected', reason: 'replaced' },
    ]);
    expect(stops()).toBe(1);
    expect(fatal.map((error) => [error.reason, error.message])).toEqual([
      ['replaced', 'another executor with this key registered environment env-1 with the relay and replaced this one; not reconnecting'],
    ]);
    expect(logs).toEqual([expect.objectContaining({ level: 50, reason: 'replaced' })]);
  });
});
