import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import os from 'node:os';
import { createHash, randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { ExecClient } from '../../src/client/exec-client.js';
import type { ClientProcessEvent } from '../../src/client/process-events.js';
import { ClientNotAuthorizedError } from '../../src/client/client-not-authorized-error.js';
import { generateIdentity } from '../../src/noise/identity.js';
import { decodeRelayFrame, encodeRelayFrame } from '../../src/relay-frame/relay-frame.js';
import { NO_ACK } from '../../src/relay-frame/limits.js';
import { clientConnectPath } from '../../src/relay-control/relay-endpoints.js';
import { connectRelaySocket } from '../../src/relay-link/relay-socket.js';
import {
  TEST_TOKEN,
  connectThroughRelay,
  relayTarget,
  startRelay,
  startRemoteAgent,
  type RelayFixture,
  type RemoteAgentFixture,
} from '../support/relay-harness.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

const cwd = os.tmpdir();
const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

describe('through the relay', () => {
  let relay: RelayFixture;
  let remote: RemoteAgentFixture;

  beforeAll(async () => {
    relay = await startRelay();
    remote = await startRemoteAgent(relay.url, 'e2e-env');
  });
  afterAll(async () => {
    remote.stop();
    await relay.stop();
  });

  it('runs the process scenarios with pushed events in order and zero reads', async () => {
    const client = await connectThroughRelay(relay.url, remote);
    const handle = await client.exec(['sh', '-c', 'echo hi; echo err >&2; exit 3'], { cwd, env, streamEvents: true });
    const events: ClientProcessEvent[] = [];
    for await (const event of handle.events) events.push(event);
    expect(events.map((e) => [e.type, e.seq])).toEqual([
      ['output', 1],
      ['output', 2],
      ['exited', 3],
      ['closed', 4],
    ]);
    const result = await handle.completion;
    expect(result).toMatchObject({ exitCode: 3, sandboxDenied: false });
    const cat = await client.exec(['cat'], { cwd, env, pipeStdin: true });
    await cat.write('through the tunnel', { closeStdin: true });
    expect((await cat.completion).stdout.toString()).toBe('through the tunnel');
    expect(client.readsIssued).toBe(0);
    client.close();
  });

  it('serves many concurrent streams on one executor', async () => {
    const clients = await Promise.all(Array.from({ length: 24 }, () => connectThroughRelay(relay.url, remote)));
    const results = await Promise.all(
      clients.map(async (client, i) => {
        const handle = await client.exec(['sh', '-c', `head -c ${20000 + i} /dev/zero | tr "\\0" a; echo ${i}`], { cwd, env });
        return (await handle.completion).stdout.toString();
      }),
    );
    results.forEach((out, i) => expect(out).toBe(`${'a'.repeat(20000 + i)}${i}\n`));
    expect(clients.every((c) => c.readsIssued === 0)).toBe(true);
    for (const client of clients) client.close();
  });

  it('carries a 5 MiB process output byte-identical', async () => {
    const client = await connectThroughRelay(relay.url, remote);
    const handle = await client.exec(['sh', '-c', 'head -c 5242880 /dev/urandom | tee /tmp/execrelay-e2e-5m | sha256sum | cut -d" " -f1 >&2; cat /tmp/execrelay-e2e-5m'], { cwd, env });
    const result = await handle.completion;
    expect(result.stdout.length).toBe(5 * 1024 * 1024);
    expect(createHash('sha256').update(result.stdout).digest('hex')).toBe(result.stderr.toString().trim());
    client.close();
  });
});

describe('the relay cannot read or forge', () => {
  it('never sees a marker printed by the remote command or written to its stdin', async () => {
    const relay = await startRelay();
    const agentSide = await startTcpProxy(Number(new URL(relay.url).port));
    const clientSide = await startTcpProxy(Number(new URL(relay.url).port));
    const remote = await startRemoteAgent(agentSide.url, 'secret-env');
    const client = await ExecClient.connect(relayTarget(clientSide.url, remote));
    const marker = `MARKER-${randomUUID()}`;
    const handle = await client.exec(['sh', '-c', `echo ${marker}; cat`], { cwd, env, pipeStdin: true });
    await handle.write(`${marker}-stdin\n`, { closeStdin: true });
    const result = await handle.completion;
    expect(result.stdout.toString()).toBe(`${marker}\n${marker}-stdin\n`);
    const seen = Buffer.concat([
      agentSide.captured('upstream'),
      agentSide.captured('downstream'),
      clientSide.captured('upstream'),
      clientSide.captured('downstream'),
    ]);
    expect(seen.length).toBeGreaterThan(1000);
    // Neither the marker nor any base64 rendering of it (the JSON carries base64 chunks) crosses the relay.
    const forms = [marker, ...[0, 1, 2].map((shift) => Buffer.from('x'.repeat(shift) + marker).toString('base64').slice(4, 24))];
    for (const form of forms) expect(seen.includes(Buffer.from(form))).toBe(false);
    // The JSON-RPC method names are encrypted too.
    expect(seen.includes(Buffer.from('process/start'))).toBe(false);
    client.close();
    remote.stop();
    await Promise.all([agentSide.close(), clientSide.close()]);
    await relay.stop();
  });

  it('fails a stream with an authentication error when the relay flips a bit in a data frame', async () => {
    const relay = await startRelay();
    const remote = await startRemoteAgent(relay.url, 'tamper-env');
    const client = await connectThroughRelay(relay.url, remote);
    const router = relay.relay.router;
    const original = router.fromExecutor.bind(router);
    let tampered = 0;
    router.fromExecutor = (link, data) => {
      const decoded = decodeRelayFrame(data);
      if (tampered === 0 && decoded.ok && decoded.frame.body.type === 'data' && decoded.frame.body.payload.length > 64) {
        tampered++;
        const copy = Buffer.from(data);
        copy[copy.length - 20]! ^= 0x01;
        return original(link, copy);
      }
      return original(link, data);
    };
    // The first data frame big enough to tamper with may be the start response or the output.
    const run = async () => (await client.exec(['sh', '-c', 'echo something worth tampering with; sleep 0.2'], { cwd, env })).completion;
    await expect(run()).rejects.toThrow(/Noise authentication failed: a received record did not decrypt/);
    expect(tampered).toBe(1);
    remote.stop();
    await relay.stop();
  });

  it('refuses an agent presenting a different key than the pinned one', async () => {
    const relay = await startRelay();
    const genuine = await generateIdentity();
    const impostor = await startRemoteAgent(relay.url, 'pinned-env');
    await expect(
      ExecClient.connect({ relay: relay.url, environmentId: 'pinned-env', agentKey: genuine.publicIdentity, token: TEST_TOKEN }),
    ).rejects.toThrow(`agent identity did not match: expected ${genuine.publicIdentity}, the agent presented ${impostor.identity.publicIdentity}`);
    impostor.stop();
    await relay.stop();
  });

  it('lets an agent restrict clients to its authorized list', async () => {
    const relay = await startRelay();
    const allowed = await generateIdentity();
    const stranger = await generateIdentity();
    const remote = await startRemoteAgent(relay.url, 'allowlist-env', { authorizedClients: new Set([allowed.publicIdentity]) });
    const ok = await connectThroughRelay(relay.url, remote, { identity: allowed });
    expect((await (await ok.exec(['true'], { cwd, env })).completion).exitCode).toBe(0);
    ok.close();
    const refusal = await connectThroughRelay(relay.url, remote, { identity: stranger, connectTimeoutMs: 5000 }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refusal).toBeInstanceOf(ClientNotAuthorizedError);
    expect((refusal as ClientNotAuthorizedError).clientIdentity).toBe(stranger.publicIdentity);
    expect((refusal as Error).message).toBe(
      `the agent refused this client (${stranger.publicIdentity}): not in its authorized clients; ` +
        `on the agent's host run: execrelay authorize --authorized-clients FILE ${stranger.publicIdentity}`,
    );
    remote.stop();
    await relay.stop();
  });
});

describe('relay refusals', () => {
  let relay: RelayFixture;
  let remote: RemoteAgentFixture;

  beforeAll(async () => {
    relay = await startRelay({ maxStreamsPerClient: 2, handshakeTimeoutMs: 400 });
    remote = await startRemoteAgent(relay.url, 'limits-env');
  });
  afterAll(async () => {
    remote.stop();
    await relay.stop();
  });

  async function rawClientSocket(): Promise<WebSocket> {
    const socket = await connectRelaySocket(`${relay.url}${clientConnectPath('limits-env')}`, TEST_TOKEN, 5000);
    socket.resume();
    return socket;
  }

  function nextReset(socket: WebSocket, streamId: string): Promise<string> {
    return new Promise((resolve) => {
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) return;
        const decoded = decodeRelayFrame(data);
        if (decoded.ok && decoded.frame.streamId === streamId && decoded.frame.body.type === 'reset') resolve(decoded.frame.body.reason);
      });
    });
  }

  const open = (streamId: string) => encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'open', payload: new Uint8Array(0) } });

  it('refuses a wrong or missing token, an invalid id and an unknown environment with the documented reason', async () => {
    await expect(connectRelaySocket(`${relay.url}${clientConnectPath('limits-env')}`, 'wrong-token-0123456789', 5000)).rejects.toThrow(
      'relay refused the connection: HTTP 401 unauthorized',
    );
    await expect(connectRelaySocket(`${relay.url}${clientConnectPath('limits-env')}`, '', 5000)).rejects.toThrow(/HTTP 401 unauthorized/);
    await expect(connectRelaySocket(`${relay.url}${clientConnectPath('no-such-env')}`, TEST_TOKEN, 5000)).rejects.toThrow(/HTTP 404 executor_unavailable/);
    await expect(connectRelaySocket(`${relay.url}${clientConnectPath('bad id!')}`, TEST_TOKEN, 5000)).rejects.toThrow(/HTTP 400 invalid_environment_id/);
    await expect(connectRelaySocket(`${relay.url}/v1/executors/connect?environmentId=x`, 'nope-nope-nope-nope', 5000)).rejects.toThrow(/HTTP 401/);
    const live = await fetch(relay.url.replace('ws', 'http') + '/livez');
    expect(live.status).toBe(200);
    const ready = await fetch(relay.url.replace('ws', 'http') + '/readyz');
    expect(await ready.text()).toBe('ready\n');
  });

  it('resets the stream of an oversized frame and keeps the socket and other streams', async () => {
    const client = await connectThroughRelay(relay.url, remote);
    const socket = await rawClientSocket();
    const streamId = randomUUID();
    const reset = nextReset(socket, streamId);
    const huge = Buffer.alloc(300 * 1024);
    Buffer.from(open(streamId)).copy(huge);
    socket.send(huge);
    expect(await reset).toBe('frame_too_large');
    expect(socket.readyState).toBe(WebSocket.OPEN);
    expect((await (await client.exec(['echo', 'still fine'], { cwd, env })).completion).stdout.toString()).toBe('still fine\n');
    socket.close();
    client.close();
  });

  it('refuses streams past the per-client limit', async () => {
    const socket = await rawClientSocket();
    const ids = [randomUUID(), randomUUID(), randomUUID()];
    const third = nextReset(socket, ids[2]!);
    for (const id of ids) socket.send(open(id));
    expect(await third).toBe('too_many_streams');
    socket.close();
  });

  it('resets a stream whose first Noise message is malformed with a reason from the fixed set, and leaves other streams alone', async () => {
    const socket = await rawClientSocket();
    const streamId = randomUUID();
    const reset = nextReset(socket, streamId);
    socket.send(open(streamId));
    // A length-prefixed handshake message far too short to hold an ephemeral key.
    const garbage = Uint8Array.from([0x00, 0x05, 1, 2, 3, 4, 5]);
    socket.send(encodeRelayFrame({ streamId, ack: NO_ACK, ackBits: 0, body: { type: 'data', seq: 0, segmentIndex: 0, segmentCount: 1, payload: garbage } }));
    const reason = await reset;
    // The relay reads reset frames: it learns a fixed reason, never the agent's error text.
    expect(reason).toMatch(/^(handshake_failed(: .*)?|writer_failed)$/);
    expect(reason).not.toMatch(/local writer failed/);
    const client = await connectThroughRelay(relay.url, remote);
    expect((await (await client.exec(['echo', 'unaffected'], { cwd, env })).completion).stdout.toString()).toBe('unaffected\n');
    socket.close();
    client.close();
  });

  it('resets a slowloris handshake and leaves other streams alone', async () => {
    const socket = await rawClientSocket();
    const streamId = randomUUID();
    const reset = nextReset(socket, streamId);
    socket.send(open(streamId)); // and never a Noise handshake message
    const client = await connectThroughRelay(relay.url, remote);
    expect(await reset).toMatch(/handshake_timeout|handshake_failed/);
    expect((await (await client.exec(['echo', 'unaffected'], { cwd, env })).completion).stdout.toString()).toBe('unaffected\n');
    socket.close();
    client.close();
  });
});

describe('link failures', () => {
  it('finishes a stream byte-identical after the executor WebSocket is dropped mid-stream', async () => {
    const relay = await startRelay();
    const remote = await startRemoteAgent(relay.url, 'drop-env');
    const client = await connectThroughRelay(relay.url, remote);
    const size = 50 * 1024 * 1024;
    const handle = await client.exec(['sh', '-c', `head -c ${size} /dev/urandom | tee /tmp/execrelay-drop-50m | sha256sum | cut -d" " -f1 > /tmp/execrelay-drop-50m.sum; cat /tmp/execrelay-drop-50m`], {
      cwd,
      env,
      streamEvents: true,
      collectOutput: false,
    });
    const hash = createHash('sha256');
    let received = 0;
    let dropped = false;
    for await (const event of handle.events) {
      if (event.type !== 'output') continue;
      hash.update(event.chunk);
      received += event.chunk.length;
      if (!dropped && received > 5 * 1024 * 1024) {
        dropped = true;
        remote.registration.dropLink();
      }
    }
    const result = await handle.completion;
    expect(result.exitCode).toBe(0);
    expect(received).toBe(size);
    const { readFile } = await import('node:fs/promises');
    expect(hash.digest('hex')).toBe((await readFile('/tmp/execrelay-drop-50m.sum', 'utf8')).trim());
    client.close();
    remote.stop();
    await relay.stop();
  }, 120_000);
});
