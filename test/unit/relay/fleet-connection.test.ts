import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { FleetConnection } from '../../../relay/fleet-connection.js';
import { NO_RELAY_EVENTS, type RelayEvents } from '../../../relay/relay-events.js';
import { createLogger } from '../../../src/logging/logger.js';
import { fleetToolsInstalled, startNats, type NatsServer } from '../../support/fleet-harness.js';

/**
 * The fleet's one JSON request/answer primitive (`requestJson` / `serveJson`) between two relay
 * instances' connections to a real nats-server: what is answered, and what each side does with a
 * request or an answer that is not one, or with no answer.
 */

const Question = z.object({ n: z.number().int() });
const Answer = z.object({ twice: z.number().int() });

/** One instance's connection, and the fleet errors it reported; `errorsReach(n)` resolves once there are `n`. */
async function member(nats: NatsServer) {
  const errors: string[] = [];
  const waiting: { count: number; resolve: () => void }[] = [];
  const events: RelayEvents = {
    ...NO_RELAY_EVENTS,
    fleetError: (kind) => {
      errors.push(kind);
      for (const waiter of waiting.filter((w) => errors.length >= w.count)) waiter.resolve();
    },
  };
  const connection = await FleetConnection.open(nats.url, 'fleet-connection-test', events, createLogger('test', 'silent'), () => undefined);
  const errorsReach = (count: number) => (errors.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiting.push({ count, resolve })));
  return { connection, errors, errorsReach };
}

const toolsMissing = !fleetToolsInstalled();
describe.skipIf(toolsMissing && !process.env.CI)('FleetConnection requestJson / serveJson over a real nats-server', () => {
  let nats: NatsServer;
  let asker: Awaited<ReturnType<typeof member>>;
  let server: Awaited<ReturnType<typeof member>>;
  let subjects = 0;
  const subject = () => `execrelay.test.${++subjects}`;

  beforeAll(async () => {
    nats = await startNats();
    [asker, server] = await Promise.all([member(nats), member(nats)]);
  });
  afterAll(async () => {
    await asker?.connection.close();
    await server?.connection.close();
    await nats?.kill();
  });

  it('a request is served parsed and its answer comes back parsed', async () => {
    const s = subject();
    const asked: unknown[] = [];
    const subscription = server.connection.serveJson(s, Question, (question) => (asked.push(question), { twice: question.n * 2 }));
    await server.connection.nats.flush();
    expect(await asker.connection.requestJson(s, { n: 21 }, Answer, 5_000)).toEqual({ twice: 42 });
    expect(asked).toEqual([{ n: 21 }]);
    expect([asker.errors, server.errors]).toEqual([[], []]);
    subscription.unsubscribe();
  });

  it('a request that is not one, or that asks for no answer, is counted by the server and not answered', async () => {
    const s = subject();
    let served = 0;
    server.connection.serveJson(s, Question, (question) => (served++, { twice: question.n * 2 }));
    await server.connection.nats.flush();
    const before = server.errors.length;
    const answers = Promise.all(['not json', '{"n":1.5}', '{"m":1}'].map((garbage) => asker.connection.request(s, Buffer.from(garbage), 200)));
    expect(asker.connection.publish(s, Buffer.from('{"n":1}'))).toBe(true);
    expect(await answers).toEqual([null, null, null]);
    await server.errorsReach(before + 4);
    expect(served).toBe(0);
    expect(server.errors.slice(before)).toEqual(['control', 'control', 'control', 'control']);
    expect(asker.errors).toEqual([]);
  });

  it('an answer that is not one is null for the asker and counted', async () => {
    const s = subject();
    server.connection.subscribe(s, (msg) => msg.respond(Buffer.from('{"twice":"many"}')));
    await server.connection.nats.flush();
    const before = asker.errors.length;
    expect(await asker.connection.requestJson(s, { n: 1 }, Answer, 5_000)).toBeNull();
    expect(asker.errors.slice(before)).toEqual(['control']);
  });

  it('no answer in time, or nobody listening, is null and not counted', async () => {
    const s = subject();
    let heard = 0;
    server.connection.subscribe(s, () => void heard++);
    await server.connection.nats.flush();
    const before = asker.errors.length;
    const started = Date.now();
    expect(await asker.connection.requestJson(s, { n: 1 }, Answer, 200)).toBeNull();
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(heard).toBe(1);
    // Nobody subscribes: NATS says so at once, long before the timeout.
    const nobody = Date.now();
    expect(await asker.connection.requestJson(subject(), { n: 1 }, Answer, 10_000)).toBeNull();
    expect(Date.now() - nobody).toBeLessThan(5_000);
    expect(asker.errors.slice(before)).toEqual([]);
  });

  it('a closed connection asks nothing: null at once', async () => {
    const closing = await member(nats);
    await closing.connection.close();
    expect(await closing.connection.requestJson(subject(), { n: 1 }, Answer, 10_000)).toBeNull();
    expect(closing.errors).toEqual([]);
  });
});
