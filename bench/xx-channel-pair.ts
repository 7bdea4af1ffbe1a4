import { randomUUID } from 'node:crypto';
import { generateIdentity, type Identity } from '../src/noise/identity.js';
import { acceptAgentChannel, openClientChannel, type SecureChannel } from '../src/noise/noise-channel.js';
import { decodeRelayFrame } from '../src/relay-frame/relay-frame.js';
import { ReliableStream } from '../src/reliable-stream/reliable-stream.js';

/**
 * A client and an agent Noise XX channel in this process, over two reliable streams whose relay
 * frames are encoded, copied and decoded on the next turn (what a relay hop costs, without sockets).
 */
export async function xxChannelPair(
  identities?: { client: Identity; agent: Identity },
): Promise<{ client: SecureChannel; agent: SecureChannel }> {
  const id = randomUUID();
  const a = new ReliableStream({ streamId: id, role: 'initiator' });
  const b = new ReliableStream({ streamId: id, role: 'responder' });
  const link = (to: ReliableStream) => (frame: Uint8Array) => {
    const copy = Buffer.from(frame);
    setImmediate(() => {
      const decoded = decodeRelayFrame(copy);
      if (decoded.ok) to.receiveFrame(decoded.frame);
    });
    return true;
  };
  a.attach(link(b));
  b.attach(link(a));
  const [clientIdentity, agentIdentity] = identities ? [identities.client, identities.agent] : await Promise.all([generateIdentity(), generateIdentity()]);
  const [client, agent] = await Promise.all([
    openClientChannel(a.toDuplex(), { identity: clientIdentity, expectedAgent: agentIdentity.publicIdentity, handshakeTimeoutMs: 5000 }),
    acceptAgentChannel(b.toDuplex(), { identity: agentIdentity, handshakeTimeoutMs: 5000 }),
  ]);
  return { client, agent };
}
