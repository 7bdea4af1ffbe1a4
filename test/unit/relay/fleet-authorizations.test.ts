import { describe, expect, it } from 'vitest';
import type { Msg } from '@nats-io/transport-node';
import { FleetAuthorizations } from '../../../relay/fleet-authorizations.js';
import type { FleetConnection } from '../../../relay/fleet-connection.js';
import { FleetSubject } from '../../../relay/fleet-wire.js';
import { RecentProofs } from '../../../relay/recent-proofs.js';
import { NO_RELAY_EVENTS, type RelayEvents } from '../../../relay/relay-events.js';
import { createLogger } from '../../../src/logging/logger.js';

const NONCE = 'ab'.repeat(16);
const self = { instance: 'relay-a', boot: 'bootA' };
const expiresAt = () => Date.now() + 60_000;

/**
 * Two relay processes' FleetAuthorizations joined by an in-memory stand-in for NATS request/reply:
 * a request to a subject nobody subscribes gets no answer, as NATS's "no responders".
 */
function fleet() {
  const subscribers = new Map<string, (msg: Msg) => void>();
  const errors: string[] = [];
  const events: RelayEvents = { ...NO_RELAY_EVENTS, fleetError: (kind) => void errors.push(kind) };
  let connected = true;
  const connection = {
    subscribe(subject: string, handler: (msg: Msg) => void) {
      subscribers.set(subject, handler);
      return { unsubscribe: () => subscribers.delete(subject) };
    },
    async request(subject: string, data: Uint8Array): Promise<Uint8Array | null> {
      const handler = connected ? subscribers.get(subject) : undefined;
      if (!handler) return null;
      let answer: Uint8Array | null = null;
      handler({ subject, data, reply: '_INBOX.1', respond: (reply: Uint8Array) => ((answer = reply), true) } as unknown as Msg);
      return answer;
    },
  } as unknown as FleetConnection;
  const member = (minter: { instance: string; boot: string }) => {
    const authorizations = new FleetAuthorizations(minter, () => connection, new RecentProofs(100), events, createLogger('test', 'silent'));
    authorizations.subscribe();
    return authorizations;
  };
  return { member, subscribers, errors, disconnect: () => (connected = false) };
}

describe('FleetAuthorizations', () => {
  it('an authorization is used once fleet-wide: its minter answers fresh once, replayed after, wherever it is asked from', async () => {
    const { member } = fleet();
    const a = member(self);
    const b = member({ instance: 'relay-b', boot: 'bootB' });
    const minterB = { instance: 'relay-b', boot: 'bootB' };
    const x = expiresAt();
    expect(await a.use(minterB, NONCE, x)).toBe('fresh');
    expect(await a.use(minterB, NONCE, x)).toBe('replayed');
    expect(await b.use(minterB, NONCE, x)).toBe('replayed');
    // Minted by this process (or by no fleet process): its own memory.
    const other = 'cd'.repeat(16);
    expect(await a.use(self, other, x)).toBe('fresh');
    expect(await a.use(null, other, x)).toBe('replayed');
  });

  it('fails closed: a minter that restarted (another boot), died, or cannot be reached means unavailable', async () => {
    const { member, disconnect } = fleet();
    const a = member(self);
    member({ instance: 'relay-b', boot: 'bootB' });
    expect(await a.use({ instance: 'relay-b', boot: 'earlier-boot' }, NONCE, expiresAt())).toBe('unavailable');
    expect(await a.use({ instance: 'relay-gone', boot: 'bootX' }, NONCE, expiresAt())).toBe('unavailable');
    disconnect();
    expect(await a.use({ instance: 'relay-b', boot: 'bootB' }, NONCE, expiresAt())).toBe('unavailable');
    // This process's own authorizations do not need NATS.
    expect(await a.use(self, NONCE, expiresAt())).toBe('fresh');
  });

  it('an answer that is not one, or a request that is not one, is counted and refused', async () => {
    const { member, subscribers, errors } = fleet();
    const a = member(self);
    const subject = FleetSubject.authorizationsOf('relay-b', 'bootB');
    subscribers.set(subject, (msg) => msg.respond(Buffer.from('{"use":"sure"}')));
    expect(await a.use({ instance: 'relay-b', boot: 'bootB' }, NONCE, expiresAt())).toBe('unavailable');
    expect(errors).toEqual(['control']);
    // A garbage request to this process is not answered.
    let answered = false;
    subscribers.get(FleetSubject.authorizationsOf(self.instance, self.boot))!({ subject, data: Buffer.from('{"nonce":"short"}'), reply: '_INBOX.2', respond: () => (answered = true) } as unknown as Msg);
    expect(answered).toBe(false);
    expect(errors).toEqual(['control', 'control']);
  });
});
