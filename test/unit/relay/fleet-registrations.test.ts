import { describe, expect, it } from 'vitest';
import { FleetRegistrations } from '../../../relay/fleet-registrations.js';
import { CodexRegistrationEntry, FleetSubject, fleetRegistrationId, registrationMinter } from '../../../relay/fleet-wire.js';
import { NO_RELAY_EVENTS, type RelayEvents } from '../../../relay/relay-events.js';
import { createLogger } from '../../../src/logging/logger.js';
import { InMemoryNats } from '../../support/in-memory-nats.js';

const minterA = { instance: 'relay-a', boot: 'bootA' };
const KEY = { suite: 'suite', x25519_public_key: 'x', mlkem768_public_key: 'm' };

/** Relay processes' FleetRegistrations, each on its own FleetConnection to an in-memory stand-in for NATS request/reply. */
function nats() {
  const stand = new InMemoryNats();
  const errors: string[] = [];
  const events: RelayEvents = { ...NO_RELAY_EVENTS, fleetError: (kind) => void errors.push(kind) };
  const member = (self: { instance: string; boot: string }) => {
    const connection = stand.connection(events);
    const registrations = new FleetRegistrations(self, () => connection, createLogger('test', 'silent'));
    registrations.subscribe();
    return registrations;
  };
  return { member, nats: stand, errors };
}

describe('fleet registration ids', () => {
  it('name the minting process, and nothing else parses as one', () => {
    const id = fleetRegistrationId('relay-a_1', 'b0Ot-_x', '1b4e28ba-2fa1-11d2-883f-0016d3cca427');
    expect(id).toBe('reg.relay-a_1.b0Ot-_x.1b4e28ba-2fa1-11d2-883f-0016d3cca427');
    expect(registrationMinter(id)).toEqual({ instance: 'relay-a_1', boot: 'b0Ot-_x' });
    // Within the registry entry's bound for the longest instance id.
    expect(CodexRegistrationEntry.shape.registrationId.safeParse(fleetRegistrationId('i'.repeat(64), 'AAAAAAAA', crypto.randomUUID())).success).toBe(true);
    for (const other of ['reg-1b4e28ba-2fa1-11d2-883f-0016d3cca427', 'reg.a.b', 'reg.a.b.c.d', 'reg.a b.b.c', 'reg..b.c', 'xyz.a.b.c', '']) {
      expect(registrationMinter(other), other).toBeNull();
    }
  });
});

describe('FleetRegistrations', () => {
  it('a claim reaches the minting process, whose registry answers it; that answer comes back parsed', async () => {
    const { member } = nats();
    const a = member(minterA);
    const b = member({ instance: 'relay-b', boot: 'bootB' });
    const asked: unknown[] = [];
    a.handOver = (request) => {
      asked.push(request);
      return asked.length === 1 ? { result: 'handed_over', credentialId: 'cred1', executorKey: KEY, registeredAt: 5 } : { result: 'refused' };
    };
    expect(await b.claim(minterA, 'env', 'reg.relay-a.bootA.u')).toEqual({ result: 'handed_over', credentialId: 'cred1', executorKey: KEY, registeredAt: 5 });
    expect(await b.claim(minterA, 'env', 'reg.relay-a.bootA.u')).toEqual({ result: 'refused' });
    expect(asked).toEqual([
      { environmentId: 'env', registrationId: 'reg.relay-a.bootA.u' },
      { environmentId: 'env', registrationId: 'reg.relay-a.bootA.u' },
    ]);
  });

  it('fails closed: another boot (a restarted minter), no connection, or an answer that is not one: unavailable', async () => {
    const { member, errors } = nats();
    const a = member(minterA);
    a.handOver = () => ({ result: 'handed_over', credentialId: 'cred1', executorKey: KEY, registeredAt: 5 });
    const b = member({ instance: 'relay-b', boot: 'bootB' });
    expect(await b.claim({ instance: 'relay-a', boot: 'bootOld' }, 'env', 'r')).toEqual({ result: 'unavailable' });
    const offline = new FleetRegistrations({ instance: 'relay-c', boot: 'bootC' }, () => null, createLogger('test', 'silent'));
    expect(await offline.claim(minterA, 'env', 'r')).toEqual({ result: 'unavailable' });
    expect(errors).toEqual([]);

    const garbled = nats();
    garbled.nats.serveRaw(FleetSubject.registrationsOf(minterA.instance, minterA.boot), () => Buffer.from('{"result":"handed_over"}'));
    expect(await garbled.member({ instance: 'relay-b', boot: 'bootB' }).claim(minterA, 'env', 'r')).toEqual({ result: 'unavailable' });
    expect(garbled.errors).toEqual(['control']);
  });

  it('a minter with no registry attached refuses; a malformed claim is counted and not answered', async () => {
    const { member, nats: stand, errors } = nats();
    member(minterA);
    expect(await member({ instance: 'relay-b', boot: 'bootB' }).claim(minterA, 'env', 'r')).toEqual({ result: 'refused' });
    const subject = FleetSubject.registrationsOf(minterA.instance, minterA.boot);
    expect(stand.deliver(subject, Buffer.from('not json'))).toBeNull();
    expect(stand.deliver(subject, Buffer.from(JSON.stringify({ environmentId: 'e', registrationId: 'r'.repeat(129) })))).toBeNull();
    expect(stand.deliver(subject, Buffer.from(JSON.stringify({ environmentId: 'e', registrationId: 'r' })), false)).toBeNull();
    expect(errors).toEqual(['control', 'control', 'control']);
  });
});
