import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { FleetConnection } from '../../relay/fleet-connection.js';
import type { RelayEvents } from '../../relay/relay-events.js';
import { createLogger } from '../../src/logging/logger.js';

type Callback = (error: Error | null, msg: Msg) => void;

/**
 * An in-memory stand-in for a NATS server's request/reply, for unit tests that stand in for other
 * relay instances: `connection(events)` is a real `FleetConnection` (its `requestJson` and
 * `serveJson` run as in a relay) over a fake NATS connection. A request is delivered at once to the
 * subject's subscriber; one that nobody subscribes, that its subscriber does not answer, or sent
 * while `down`, gets no answer at once (as NATS's "no responders"; no timeout is waited for).
 * (`test/unit/relay/fleet-connection.test.ts` runs the primitive over a real nats-server.)
 */
export class InMemoryNats {
  private readonly subscribers = new Map<string, Callback>();
  /** While true, nothing is delivered. */
  down = false;

  /** A relay instance's connection to this stand-in, reporting to `events`. */
  connection(events: RelayEvents): FleetConnection {
    const never = { [Symbol.asyncIterator]: () => ({ next: () => new Promise<never>(() => undefined) }) };
    const nc = {
      subscribe: (subject: string, options: { callback: Callback }): Subscription => {
        this.subscribers.set(subject, options.callback);
        return { unsubscribe: () => void this.subscribers.delete(subject) } as unknown as Subscription;
      },
      request: async (subject: string, data: Uint8Array): Promise<Msg> => {
        const answer = this.deliver(subject, data);
        if (!answer) throw new Error('no answer');
        return { data: answer } as Msg;
      },
      publish: (subject: string, data: Uint8Array) => void this.deliver(subject, data, false),
      status: () => never,
      close: async () => undefined,
      info: { max_payload: 1024 * 1024 },
    } as unknown as NatsConnection;
    return FleetConnection.over(nc, events, createLogger('test', 'silent'), () => undefined);
  }

  /** Whether anyone subscribes `subject`. */
  serves(subject: string): boolean {
    return this.subscribers.has(subject);
  }

  /** Replaces `subject`'s subscriber by one answering `answer(request)` as it is (null: no answer), bypassing `serveJson`. */
  serveRaw(subject: string, answer: (request: Uint8Array) => Uint8Array | null): void {
    this.subscribers.set(subject, (_error, msg) => {
      const reply = answer(msg.data);
      if (reply) msg.respond(reply);
    });
  }

  /** Delivers `data` to `subject`'s subscriber as a request (`reply` set unless `expectsAnswer` is false): its answer, or null. */
  deliver(subject: string, data: Uint8Array, expectsAnswer = true): Uint8Array | null {
    const callback = this.down ? undefined : this.subscribers.get(subject);
    if (!callback) return null;
    let answer: Uint8Array | null = null;
    const msg = {
      subject,
      data,
      reply: expectsAnswer ? '_INBOX.stand-in' : '',
      respond: (reply: Uint8Array) => ((answer = reply), true),
    } as unknown as Msg;
    callback(null, msg);
    return answer;
  }
}
