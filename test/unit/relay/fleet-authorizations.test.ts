import { describe, expect, it } from 'vitest';
import { FleetAuthorizations } from '../../../relay/fleet-authorizations.js';
import { FleetSubject } from '../../../relay/fleet-wire.js';
import { RecentProofs } from '../../../relay/recent-proofs.js';
import { NO_RELAY_EVENTS, type RelayEvents } from '../../../relay/relay-events.js';
import { createLogger } from '../../../src/logging/logger.js';
import { InMemoryNats } from '../../support/in-memory-nats.js';

const NONCE = 'ab'.repeat(16);
const self = { instance: 'relay-a', boot: 'bootA' };
const expiresAt = () => Date.now() + 60_000;

/**
 * Two relay processes' FleetAuthorizations, each on its own FleetConnection to an in-memory
 * stand-in for NATS request/reply: a request to a subject nobody subscribes gets no answer, as
 * NATS's "no responders".
 */
function fleet() {
  const nats = new InMemoryNats();
  const errors: string[] = [];
  const events: RelayEvents = { ...NO_RELAY_EVENTS, fleetError: (kind) => void errors.push(kind) };
  const member = (minter: { instance: string; boot: string }) => {
    const connection = nats.connection(events);
    const authorizations = new FleetAuthorizations(minter, () => connection, new RecentProofs(100), createLogger('test', 'silent'));
    authorizations.subscribe();
    return authorizations;
  };
  return { member, nats, errors, disconnect: () => (nats.down = true) };
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
    const { member, nats, errors } = fleet();
    const a = member(self);
    nats.serveRaw(FleetSubject.authorizationsOf('relay-b', 'bootB'), () => Buffer.from('{"use":"sure"}'));
    expect(await a.use({ instance: 'relay-b', boot: 'bootB' }, NONCE, expiresAt())).toBe('unavailable');
    expect(errors).toEqual(['control']);
    // A garbage request to this process, or one that expects no answer, is not answered (and uses nothing).
    const own = FleetSubject.authorizationsOf(self.instance, self.boot);
    expect(nats.deliver(own, Buffer.from('{"nonce":"short"}'))).toBeNull();
    expect(nats.deliver(own, Buffer.from(JSON.stringify({ nonce: NONCE, expiresAt: expiresAt() })), false)).toBeNull();
    expect(errors).toEqual(['control', 'control', 'control']);
    // A well-formed one is answered, and that was the nonce's first use.
    expect(JSON.parse(Buffer.from(nats.deliver(own, Buffer.from(JSON.stringify({ nonce: NONCE, expiresAt: expiresAt() })))!).toString())).toEqual({ use: 'fresh' });
  });
});
