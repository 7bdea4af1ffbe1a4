/**
 * A hostile authorized client floods its session with malformed messages and never reads the
 * answers (a real Noise session through a real relay to a real agent). Each malformed message gets
 * an error answer; unread, those answers fill the agent's send window, and before the bound on
 * unsent error answers (`DEFAULT_MAX_UNSENT_ERRORS`, `src/jsonrpc/connection.ts`) the agent went on
 * reading and queued every further answer in memory: a few bytes sent, a hundred kept, without
 * end. Now the agent stops reading that session at the bound, so the attacker's own sends stall
 * (its window is not acked) instead of the agent's memory growing; once the attacker reads again,
 * every message is answered. A victim of another identity runs commands throughout.
 */
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExecClient } from '../../src/client/exec-client.js';
import { openRelayChannel } from '../../src/client/relay-channel.js';
import { generateIdentity } from '../../src/noise/identity.js';
import type { MessageTransport } from '../../src/transport/message-transport.js';
import { eventually } from '../support/resilience-helpers.js';
import { connectThroughRelay, relayTarget, startRelay, startRemoteAgent, type RelayFixture, type RemoteAgentFixture } from '../support/relay-harness.js';

/**
 * Malformed messages sent: 100 bytes each, 20 MB in all. Before the stall the windows and queues
 * between the two take about 7 MB of them (measured: 69,217 messages); without the bound every one
 * is read and answered into the agent's memory (measured: all 200,000 sent while unread).
 */
const FLOOD = 200_000;
const GARBAGE = `not json ${'x'.repeat(91)}`;

describe('a client that floods malformed messages without reading the answers', () => {
  let relay: RelayFixture;
  let remote: RemoteAgentFixture;
  let victim: ExecClient;
  let attacker: MessageTransport;

  beforeAll(async () => {
    relay = await startRelay();
    remote = await startRemoteAgent(relay.url, 'env-unread-answers');
    const [attackerIdentity, victimIdentity] = await Promise.all([generateIdentity(), generateIdentity()]);
    victim = await connectThroughRelay(relay.url, remote, { identity: victimIdentity });
    attacker = await openRelayChannel(relayTarget(relay.url, remote, { identity: attackerIdentity }));
  });
  afterAll(async () => {
    attacker?.close();
    victim?.close();
    remote?.stop();
    await relay?.stop();
  });

  it('stalls the attacker (the agent stops reading it at the bound), not the agent\'s memory; the victim keeps running; reading again, every message is answered', async () => {
    let answers = 0;
    attacker.onMessage((text) => {
      if ((JSON.parse(text) as { id?: unknown; error?: { code?: number } }).error?.code === -32600) answers += 1;
    });
    attacker.pauseReceiving();
    let sent = 0;
    const sends = Array.from({ length: FLOOD }, () => attacker.send(GARBAGE).then(() => void (sent += 1)));

    // The flood stalls well short of its end: once the agent's answers fill its window and 256 more
    // wait, it reads no more of this session, and the attacker's window is not acked.
    let last = -1;
    await eventually(
      async () => {
        const settled = sent === last;
        last = sent;
        return settled || sent === FLOOD ? true : undefined;
      },
      30_000,
      'the attacker\'s sends to settle',
      1000,
    );
    const stalledAt = sent;
    expect(stalledAt).toBeLessThan(FLOOD);
    expect(answers).toBe(0);

    // Meanwhile the agent serves the victim.
    for (let run = 0; run < 3; run++) {
      const completion = await (await victim.exec(['echo', `victim ${run}`], { cwd: os.tmpdir() })).completion;
      expect(completion.stdout.toString()).toBe(`victim ${run}\n`);
    }

    // Reading again, the attacker gets its answers and the rest of its flood is read and answered.
    attacker.resumeReceiving();
    await Promise.all(sends);
    await eventually(async () => (answers === FLOOD ? true : undefined), 60_000, 'every malformed message answered', 100);
    console.log(`unread answers: ${stalledAt} of ${FLOOD} malformed messages sent before the stall; all ${answers} answered after reading again`);
  }, 120_000);
});
