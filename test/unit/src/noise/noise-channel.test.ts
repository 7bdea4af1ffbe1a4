import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateIdentity, type Identity } from '../../../../src/noise/identity.js';
import {
  acceptAgentChannel,
  MAX_RECORD_PLAINTEXT_BYTES,
  NoiseChannelError,
  openClientChannel,
  TRUST_ON_FIRST_USE,
  type SecureChannel,
} from '../../../../src/noise/noise-channel.js';
import { createMemoryDuplexPair, type MemoryDuplexOptions } from '../../../support/memory-duplex.js';
import type { NoiseMessageChannel } from '../../../../src/noise/noise-message-channel.js';

let agentIdentity: Identity;
let clientIdentity: Identity;
let strangerIdentity: Identity;

beforeAll(async () => {
  [agentIdentity, clientIdentity, strangerIdentity] = await Promise.all([generateIdentity(), generateIdentity(), generateIdentity()]);
});

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeEach(() => {
  unhandled.length = 0;
  process.on('unhandledRejection', onUnhandled);
});
afterEach(async () => {
  // Give stray promises a chance to reject before checking.
  await new Promise((resolve) => setTimeout(resolve, 20));
  process.off('unhandledRejection', onUnhandled);
  expect(unhandled).toEqual([]);
});

async function connectedPair(
  options: { duplex?: MemoryDuplexOptions; clientMax?: number; agentMax?: number; prologue?: Uint8Array; sendBufferBytes?: number } = {},
): Promise<{ client: SecureChannel; agent: SecureChannel; ends: ReturnType<typeof createMemoryDuplexPair> }> {
  const ends = createMemoryDuplexPair(options.duplex);
  const [clientEnd, agentEnd] = ends;
  const [client, agent] = await Promise.all([
    openClientChannel(clientEnd, {
      identity: clientIdentity,
      expectedAgent: agentIdentity.publicIdentity,
      handshakeTimeoutMs: 5_000,
      ...(options.clientMax ? { maxMessageBytes: options.clientMax } : {}),
      ...(options.prologue ? { prologue: options.prologue } : {}),
      ...(options.sendBufferBytes ? { sendBufferBytes: options.sendBufferBytes } : {}),
    }),
    acceptAgentChannel(agentEnd, {
      identity: agentIdentity,
      handshakeTimeoutMs: 5_000,
      ...(options.agentMax ? { maxMessageBytes: options.agentMax } : {}),
      ...(options.prologue ? { prologue: options.prologue } : {}),
    }),
  ]);
  return { client, agent, ends };
}

function collect(channel: SecureChannel): { messages: string[]; closed: Promise<Error | undefined> } {
  const messages: string[] = [];
  channel.onMessage((message) => messages.push(message));
  const closed = new Promise<Error | undefined>((resolve) => channel.onClose(resolve));
  return { messages, closed };
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('noise channel: round trip', () => {
  it('carries many messages both ways, in order, including a 5 MiB message and concurrent sends', async () => {
    const { client, agent } = await connectedPair();
    expect(client.kind).toBe('relay');
    expect(client.remoteIdentity).toBe(agentIdentity.publicIdentity);
    expect(agent.remoteIdentity).toBe(clientIdentity.publicIdentity);
    const atAgent = collect(agent);
    const atClient = collect(client);

    const big = JSON.stringify({ id: 1, blob: 'é'.repeat(1024) + 'x'.repeat(5 * 1024 * 1024) });
    const toAgent = Array.from({ length: 500 }, (_, i) => JSON.stringify({ id: i, method: 'm', params: { i } }));
    const toClient = Array.from({ length: 500 }, (_, i) => JSON.stringify({ id: i, result: { text: 'ü'.repeat(i) } }));
    const sends = [
      ...toAgent.slice(0, 250).map((m) => client.send(m)),
      client.send(big),
      ...toAgent.slice(250).map((m) => client.send(m)),
      ...toClient.map((m) => agent.send(m)),
      agent.send(''),
    ];
    await Promise.all(sends);
    await waitFor(() => atAgent.messages.length === 501 && atClient.messages.length === 501);
    expect(atAgent.messages).toEqual([...toAgent.slice(0, 250), big, ...toAgent.slice(250)]);
    expect(atClient.messages).toEqual([...toClient, '']);

    client.close();
    expect(client.closed).toBe(true);
    expect(await atClient.closed).toBeUndefined();
    expect(await atAgent.closed).toBeUndefined();
    expect(agent.closed).toBe(true);
  });

  it('frames each record at most MAX_RECORD_PLAINTEXT_BYTES of plaintext, packed full (Noise messages fit 65,535 bytes and one 64 KiB relay segment)', async () => {
    const sizes: number[] = [];
    const { client, agent } = await connectedPair({
      duplex: {
        tamperAToB: (chunk) => {
          sizes.push(chunk.byteLength);
          return chunk;
        },
      },
    });
    const atAgent = collect(agent);
    const handshakeChunks = sizes.length;
    const message = 'y'.repeat(1024 * 1024);
    await client.send(message);
    await waitFor(() => atAgent.messages.length === 1);
    expect(atAgent.messages[0]).toBe(message);
    // 2-byte Noise length prefix + ciphertext + 16-byte tag.
    expect(MAX_RECORD_PLAINTEXT_BYTES).toBe(65_518);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(2 + MAX_RECORD_PLAINTEXT_BYTES + 16);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(65_536);
    // Packed full: 1 MiB + its 4-byte header in 17 records, all but the last of the maximum size.
    const records = sizes.slice(handshakeChunks);
    expect(records.length).toBe(Math.ceil((1024 * 1024 + 4) / MAX_RECORD_PLAINTEXT_BYTES));
    expect(records.slice(0, -1).every((size) => size === 2 + MAX_RECORD_PLAINTEXT_BYTES + 16)).toBe(true);
    client.close();
  });

  it('carries binary messages of every size, in order with text, packing the 8-byte frame header into the record of its body', async () => {
    const sizes: number[] = [];
    const { client, agent } = await connectedPair({
      clientMax: 1024 * 1024,
      duplex: {
        tamperAToB: (chunk) => {
          sizes.push(chunk.byteLength);
          return chunk;
        },
      },
    });
    const received: Array<string | Buffer> = [];
    agent.onMessage((message) => received.push(message));
    agent.onBinaryMessage!((message) => received.push(Buffer.from(message)));
    // A body that with its 8-byte header fills one record exactly travels as one Noise message.
    const oneRecord = Buffer.alloc(MAX_RECORD_PLAINTEXT_BYTES - 8, 1);
    await client.sendBinary!(oneRecord);
    await waitFor(() => received.length === 1);
    expect(sizes.filter((size) => size > 1000)).toEqual([2 + MAX_RECORD_PLAINTEXT_BYTES + 16]);
    const bodies = [0, 1, 4096, 65_536 + 20, 3 * MAX_RECORD_PLAINTEXT_BYTES + 5].map((length, index) => {
      const body = Buffer.alloc(length);
      for (let i = 0; i < length; i++) body[i] = (i * 7 + index) & 0xff;
      return body;
    });
    const sends: Array<Promise<void>> = [];
    for (const [index, body] of bodies.entries()) {
      // Odd ones given as parts (a header and the rest): one message all the same.
      sends.push(client.sendBinary!(index % 2 === 1 ? [body.subarray(0, 1), body.subarray(1)] : body));
      sends.push(client.send(`"text ${index}"`));
    }
    await Promise.all(sends);
    await waitFor(() => received.length === 1 + 2 * bodies.length);
    expect(received[0]).toEqual(oneRecord);
    expect(received.slice(1)).toEqual(bodies.flatMap((body, index) => [body, `"text ${index}"`]));
    await expect(client.sendBinary!([Buffer.alloc(3), Buffer.alloc(1024 * 1024)])).rejects.toThrow('message of 1048579 bytes exceeds the maximum of 1048576 bytes');
    expect(client.closed).toBe(false);
    client.close();
  });

  it('delivers messages that arrive before a listener is registered, once one is', async () => {
    const { client, agent } = await connectedPair();
    await client.send('"early"');
    await new Promise((resolve) => setTimeout(resolve, 30));
    const atAgent = collect(agent);
    await waitFor(() => atAgent.messages.length === 1);
    expect(atAgent.messages).toEqual(['"early"']);
    client.close();
  });

  it('applies backpressure: send does not resolve while the peer does not consume', async () => {
    const { client, agent, ends } = await connectedPair({ sendBufferBytes: 256 * 1024 });
    const chunk = 'z'.repeat(60 * 1024);
    let resolved = 0;
    const sends = Array.from({ length: 200 }, () => client.send(chunk).then(() => resolved++));
    await new Promise((resolve) => setTimeout(resolve, 200));
    // The agent has no message listener yet, so it stops reading; only a bounded amount is in flight.
    expect(resolved).toBeLessThan(40);
    expect(ends[0].bytesWritten).toBeLessThan(3 * 1024 * 1024);
    const atAgent = collect(agent);
    await Promise.all(sends);
    await waitFor(() => atAgent.messages.length === 200);
    expect(resolved).toBe(200);
    client.close();
  });

  it('close() flushes accepted messages, ends the sink, stops the source and rejects later sends', async () => {
    const { client, agent, ends } = await connectedPair();
    const atAgent = collect(agent);
    const atClient = collect(client);
    const last = client.send('"last words"');
    client.close('done');
    await last;
    await expect(client.send('"too late"')).rejects.toThrow(/transport closed/);
    expect(await atAgent.closed).toBeUndefined();
    expect(atAgent.messages).toEqual(['"last words"']);
    expect(await atClient.closed).toBeUndefined();
    await ends[0].sinkEnded;
    await ends[1].sinkEnded;
    expect(ends[0].sinkFailure).toBeUndefined();
    expect(ends[1].sinkFailure).toBeUndefined();
    await waitFor(() => ends[0].sourceStopped && ends[1].sourceStopped);
    client.close(); // idempotent
    agent.close();
  });

  it('rejects a local send above maxMessageBytes without closing the channel', async () => {
    const { client, agent } = await connectedPair({ clientMax: 1000 });
    const atAgent = collect(agent);
    await expect(client.send('x'.repeat(1001))).rejects.toThrow('message of 1001 bytes exceeds the maximum of 1000 bytes');
    await client.send('"fine"');
    await waitFor(() => atAgent.messages.length === 1);
    expect(client.closed).toBe(false);
    client.close();
  });

  it('binds the handshake to a prologue: same prologue works, a different one fails', async () => {
    const prologue = new TextEncoder().encode('execrelay stream 42');
    const { client, agent } = await connectedPair({ prologue });
    const atAgent = collect(agent);
    await client.send('"bound"');
    await waitFor(() => atAgent.messages.length === 1);
    client.close();

    const [clientEnd, agentEnd] = createMemoryDuplexPair();
    const [clientResult, agentResult] = await Promise.allSettled([
      openClientChannel(clientEnd, {
        identity: clientIdentity,
        expectedAgent: agentIdentity.peerId,
        handshakeTimeoutMs: 5_000,
        prologue: new TextEncoder().encode('execrelay stream 43'),
      }),
      acceptAgentChannel(agentEnd, { identity: agentIdentity, handshakeTimeoutMs: 5_000, prologue }),
    ]);
    expect(clientResult.status).toBe('rejected');
    expect(agentResult.status).toBe('rejected');
    const clientError = (clientResult as PromiseRejectedResult).reason as NoiseChannelError;
    expect(clientError).toBeInstanceOf(NoiseChannelError);
    expect(clientError.code).toBe('handshake-failed');
    expect(clientError.message).toMatch(/did not authenticate \(prologue mismatch/);
  });
});

describe('noise channel: identities', () => {
  it('fails the client when the agent presents a key other than the pinned one, and the agent errors cleanly', async () => {
    const [clientEnd, agentEnd] = createMemoryDuplexPair();
    const [clientResult, agentResult] = await Promise.allSettled([
      openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: strangerIdentity.publicIdentity, handshakeTimeoutMs: 5_000 }),
      acceptAgentChannel(agentEnd, { identity: agentIdentity, handshakeTimeoutMs: 5_000 }),
    ]);
    expect(clientResult.status).toBe('rejected');
    const clientError = (clientResult as PromiseRejectedResult).reason as NoiseChannelError;
    expect(clientError).toBeInstanceOf(NoiseChannelError);
    expect(clientError.code).toBe('agent-identity-mismatch');
    expect(clientError.message).toBe(
      `agent identity did not match: expected ${strangerIdentity.publicIdentity}, the agent presented ${agentIdentity.publicIdentity}`,
    );
    expect(agentResult.status).toBe('rejected');
    const agentError = (agentResult as PromiseRejectedResult).reason as NoiseChannelError;
    expect(agentError.code).toBe('handshake-failed');
    expect(agentError.message).toMatch(/the client closed the stream during the handshake/);
    await clientEnd.sinkEnded;
    await agentEnd.sinkEnded;
  });

  it('TRUST_ON_FIRST_USE accepts the identity the agent proves and tells it; the channel works', async () => {
    const [clientEnd, agentEnd] = createMemoryDuplexPair();
    const [client, agent] = await Promise.all([
      openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: TRUST_ON_FIRST_USE, handshakeTimeoutMs: 5_000 }),
      acceptAgentChannel(agentEnd, { identity: strangerIdentity, handshakeTimeoutMs: 5_000 }),
    ]);
    expect(client.remoteIdentity).toBe(strangerIdentity.publicIdentity);
    expect(agent.remoteIdentity).toBe(clientIdentity.publicIdentity);
    const atAgent = collect(agent);
    await client.send('{"id":1}');
    await waitFor(() => atAgent.messages.length === 1);
    client.close();
  });

  it('rejects an expected agent identity that is not a valid public identity', async () => {
    const [clientEnd] = createMemoryDuplexPair();
    await expect(
      openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: 'not-a-key', handshakeTimeoutMs: 1_000 }),
    ).rejects.toThrow(/expected agent identity is invalid: invalid public identity "not-a-key"/);
    await clientEnd.sinkEnded;
  });

  it('lets an authorized client in', async () => {
    const [clientEnd, agentEnd] = createMemoryDuplexPair();
    const [client, agent] = await Promise.all([
      openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: agentIdentity.peerId, handshakeTimeoutMs: 5_000 }),
      acceptAgentChannel(agentEnd, {
        identity: agentIdentity,
        handshakeTimeoutMs: 5_000,
        authorizedClients: new Set([strangerIdentity.publicIdentity, clientIdentity.publicIdentity]),
      }),
    ]);
    const atAgent = collect(agent);
    await client.send('{"id":1}');
    await waitFor(() => atAgent.messages.length === 1);
    client.close();
  });

  it('refuses a client that is not in the authorized clients, and tells the client why', async () => {
    const [clientEnd, agentEnd] = createMemoryDuplexPair();
    const [clientResult, agentResult] = await Promise.allSettled([
      openClientChannel(clientEnd, { identity: strangerIdentity, expectedAgent: agentIdentity.peerId, handshakeTimeoutMs: 5_000 }),
      acceptAgentChannel(agentEnd, {
        identity: agentIdentity,
        handshakeTimeoutMs: 5_000,
        authorizedClients: new Set([clientIdentity.publicIdentity]),
      }),
    ]);
    expect(agentResult.status).toBe('rejected');
    const agentError = (agentResult as PromiseRejectedResult).reason as NoiseChannelError;
    expect(agentError.code).toBe('client-not-authorized');
    expect(agentError.message).toBe(
      `client ${strangerIdentity.publicIdentity} is not in this agent's authorized clients; secure channel refused`,
    );
    // XX completes on the initiator first; the refusal reaches the client as a closed channel.
    expect(clientResult.status).toBe('fulfilled');
    const client = (clientResult as PromiseFulfilledResult<SecureChannel>).value;
    const atClient = collect(client);
    const closeError = (await atClient.closed) as NoiseChannelError;
    expect(closeError.code).toBe('client-not-authorized');
    expect(closeError.message).toBe('the agent refused this client: client identity not authorized by this agent');
    await expect(client.send('{}')).rejects.toThrow(/transport closed/);
    expect(atClient.messages).toEqual([]);
  });

  it('asks the authorized set at each handshake (a list reloaded meanwhile counts)', async () => {
    const allowed = new Set<string>();
    const handshake = async () => {
      const [clientEnd, agentEnd] = createMemoryDuplexPair();
      const [, agentResult] = await Promise.allSettled([
        openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: agentIdentity.peerId, handshakeTimeoutMs: 5_000 }),
        acceptAgentChannel(agentEnd, { identity: agentIdentity, handshakeTimeoutMs: 5_000, authorizedClients: { has: (id) => allowed.has(id) } }),
      ]);
      if (agentResult.status === 'fulfilled') agentResult.value.close();
      return agentResult.status === 'fulfilled' ? 'accepted' : ((agentResult.reason as NoiseChannelError).code);
    };
    expect(await handshake()).toBe('client-not-authorized');
    allowed.add(clientIdentity.publicIdentity);
    expect(await handshake()).toBe('accepted');
    allowed.delete(clientIdentity.publicIdentity);
    expect(await handshake()).toBe('client-not-authorized');
  });

  it('leaves any other abort notice a peer-aborted failure', async () => {
    const [clientEnd, agentEnd] = createMemoryDuplexPair();
    const [client, agent] = await Promise.all([
      openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: agentIdentity.peerId, handshakeTimeoutMs: 5_000 }),
      acceptAgentChannel(agentEnd, { identity: agentIdentity, handshakeTimeoutMs: 5_000 }),
    ]);
    const atClient = collect(client);
    (agent as NoiseMessageChannel).abort(new Error('going away'), 'client identity not authorized by this agent, or so');
    const closeError = (await atClient.closed) as NoiseChannelError;
    expect(closeError.code).toBe('peer-aborted');
    expect(closeError.message).toBe('secure channel closed by the peer: client identity not authorized by this agent, or so');
  });
});

describe('noise channel: failures', () => {
  it('times out a handshake the peer never answers, within the timeout, and releases the duplex', async () => {
    const [clientEnd, silentEnd] = createMemoryDuplexPair();
    const started = Date.now();
    const result = openClientChannel(clientEnd, { identity: clientIdentity, expectedAgent: agentIdentity.peerId, handshakeTimeoutMs: 150 });
    await expect(result).rejects.toThrow('Noise handshake timed out after 150 ms (as initiator); the peer did not complete it');
    await expect(result).rejects.toMatchObject({ code: 'handshake-timeout' });
    expect(Date.now() - started).toBeLessThan(1_500);
    await clientEnd.sinkEnded;
    await waitFor(() => clientEnd.sourceStopped);
    // The silent peer sees the first handshake message and then the end of the stream.
    const seen: Uint8Array[] = [];
    for await (const chunk of silentEnd.source) seen.push(chunk);
    expect(seen.length).toBe(1);
  });

  it('times out the responder too', async () => {
    const [, agentEnd] = createMemoryDuplexPair();
    const started = Date.now();
    await expect(acceptAgentChannel(agentEnd, { identity: agentIdentity, handshakeTimeoutMs: 100 })).rejects.toMatchObject({
      code: 'handshake-timeout',
      message: 'Noise handshake timed out after 100 ms (as responder); the peer did not complete it',
    });
    expect(Date.now() - started).toBeLessThan(1_500);
    await agentEnd.sinkEnded;
  });

  it('aborts the handshake on the caller signal', async () => {
    const [clientEnd] = createMemoryDuplexPair();
    const controller = new AbortController();
    const result = openClientChannel(clientEnd, {
      identity: clientIdentity,
      expectedAgent: agentIdentity.peerId,
      handshakeTimeoutMs: 10_000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 20);
    await expect(result).rejects.toMatchObject({ code: 'handshake-aborted' });
  });

  it('closes with an authentication error on a flipped ciphertext bit and never delivers the corrupted message', async () => {
    let armed = false;
    let recordsToSkip = 2;
    const { client, agent, ends } = await connectedPair({
      duplex: {
        tamperAToB: (chunk) => {
          if (!armed) return chunk;
          if (recordsToSkip-- > 0) return chunk;
          armed = false;
          chunk[1000] = (chunk[1000] ?? 0) ^ 0x04;
          return chunk;
        },
      },
    });
    const atAgent = collect(agent);
    await client.send('"before"');
    await waitFor(() => atAgent.messages.length === 1);
    armed = true;
    // Four records: the third is corrupted after the first two authenticated.
    await client.send(JSON.stringify({ poisoned: 'p'.repeat(200 * 1024) }));
    const error = (await atAgent.closed) as NoiseChannelError;
    expect(error).toBeInstanceOf(NoiseChannelError);
    expect(error.code).toBe('authentication-failed');
    expect(error.message).toMatch(/Noise authentication failed/);
    expect(atAgent.messages).toEqual(['"before"']);
    expect(agent.closed).toBe(true);
    // The failure reaches the raw duplex as a throwing sink source (a reliable stream resets).
    await ends[1].sinkEnded;
    expect(String(ends[1].sinkFailure)).toMatch(/Noise authentication failed/);
    // The client learns of it as the end of the stream.
    const atClient = collect(client);
    await atClient.closed;
  });

  it('fails on a small corrupted record too (the in-place decryption path)', async () => {
    let armed = false;
    const { client, agent } = await connectedPair({
      duplex: {
        tamperBToA: (chunk) => {
          if (!armed) return chunk;
          armed = false;
          chunk[chunk.byteLength - 3] = (chunk[chunk.byteLength - 3] ?? 0) ^ 0x80;
          return chunk;
        },
      },
    });
    const atClient = collect(client);
    armed = true;
    await agent.send('{"id":7,"result":{}}');
    const error = (await atClient.closed) as NoiseChannelError;
    expect(error.code).toBe('authentication-failed');
    expect(atClient.messages).toEqual([]);
  });

  it('fails the channel on a declared length above the maximum, before buffering it', async () => {
    const { client, agent } = await connectedPair({ agentMax: 4096 });
    const atAgent = collect(agent);
    const atClient = collect(client);
    await client.send('"small"');
    await client.send('q'.repeat(5000));
    const error = (await atAgent.closed) as NoiseChannelError;
    expect(error.code).toBe('message-too-large');
    expect(error.message).toBe('peer declared a message of 5000 bytes, above the maximum of 4096 bytes; secure channel closed');
    expect(atAgent.messages).toEqual(['"small"']);
    const clientError = (await atClient.closed) as NoiseChannelError;
    expect(clientError.code).toBe('peer-aborted');
    expect(clientError.message).toBe('secure channel closed by the peer: message of 5000 bytes exceeds the maximum of 4096 bytes');
  });

  it('refuses an over-limit message at its header, without reading (or buffering) the rest', async () => {
    const { client, agent, ends } = await connectedPair({ agentMax: 1024 * 1024 });
    const atAgent = collect(agent);
    const sending = client.send('w'.repeat(10 * 1024 * 1024));
    const error = (await atAgent.closed) as NoiseChannelError;
    expect(error.code).toBe('message-too-large');
    expect(error.message).toBe('peer declared a message of 10485760 bytes, above the maximum of 1048576 bytes; secure channel closed');
    expect(ends[0].bytesWritten).toBeLessThan(3 * 1024 * 1024);
    await sending.catch(() => undefined);
    client.close();
  });

  it('closes with a stream error when the underlying stream fails', async () => {
    const { client, agent, ends } = await connectedPair();
    const atClient = collect(client);
    collect(agent);
    ends[0].failSource(new Error('stream reset by relay: executor gone'));
    const error = (await atClient.closed) as NoiseChannelError;
    expect(error.code).toBe('stream-failed');
    expect(error.message).toBe('secure channel failed: stream reset by relay: executor gone');
    await expect(client.send('{}')).rejects.toThrow('transport closed: secure channel failed: stream reset by relay: executor gone');
    agent.close();
  });

  it('a clean close while a multi-record message is being written still delivers it whole', async () => {
    const { client, agent } = await connectedPair();
    const atAgent = collect(agent);
    const message = 'm'.repeat(3 * 60 * 1024);
    const sending = client.send(message);
    client.close();
    await sending;
    expect(await atAgent.closed).toBeUndefined();
    expect(atAgent.messages).toEqual([message]);
  });
});
