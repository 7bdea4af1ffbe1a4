/**
 * A hostile client abusing the binary messages (`binaryOutput` / `binaryFileBlocks`,
 * `src/protocol/binary-message.ts`) on a real Noise session through a real relay to a real agent:
 * truncated headers, lengths past the end, a handle id of the longest length or not UTF-8, an
 * `fs/writeBlock` to another session's handle or to one never opened, a kind it never took up, the
 * agent→client kinds (1 and 3) sent to the agent, unknown kinds, and a flood of all of them. The
 * agent answers each with a JSON-RPC error (on the request's id once the decoder read it, else on
 * id -1), never crashes, never writes a byte the attacker does not own, and its session keeps
 * working; a victim of another identity runs commands the whole time (its worst gap is printed).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRelayChannel } from '../../src/client/relay-channel.js';
import type { ExecClient } from '../../src/client/exec-client.js';
import {
  BINARY_MESSAGE_MAGIC,
  decodeBinaryMessage,
  encodeBinaryProcessOutput,
  encodeBinaryReadBlockResult,
  encodeBinaryWriteBlock,
} from '../../src/protocol/binary-message.js';
import { generateIdentity } from '../../src/noise/identity.js';
import { connectThroughRelay, relayTarget, startRelay, startRemoteAgent, type RelayFixture, type RemoteAgentFixture } from '../support/relay-harness.js';
import { RawRpcClient, type RawMessage } from '../support/raw-rpc-client.js';

const uri = (file: string): string => pathToFileURL(file).href;
const UNEXPECTED = { code: -32600, message: 'invalid request: unexpected binary message' };
const malformed = (reason: string) => ({ code: -32600, message: `invalid request: malformed binary message: ${reason}` });

/** A client on its own Noise session through the relay that sends whatever bytes it likes. */
interface Hostile {
  /** Sends one binary message of the Noise channel's framing. */
  sendBinary(bytes: Uint8Array): Promise<void>;
  raw: RawRpcClient;
  /** Binary messages the agent sent it. */
  binary: Buffer[];
  /** Error responses on id -1 so far, in order (kept as they arrive: a wait on their count stays linear). */
  unknownIdErrors: RawMessage[];
}

/** The victim: back-to-back `echo N` runs on its own session until stopped; the worst wait for one. */
function startVictimLoop(client: ExecClient): { stop(): Promise<{ runs: number; worstMs: number }> } {
  let stopped = false;
  let runs = 0;
  let worstMs = 0;
  let failure: unknown;
  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      try {
        const completion = await (await client.exec(['echo', `victim ${runs}`], { cwd: os.tmpdir() })).completion;
        if (completion.exitCode !== 0 || completion.stdout.toString() !== `victim ${runs}\n`) throw new Error(`victim run ${runs}: exit ${completion.exitCode}, stdout ${JSON.stringify(completion.stdout.toString())}`);
      } catch (error) {
        failure = error;
        return;
      }
      worstMs = Math.max(worstMs, Date.now() - started);
      runs += 1;
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      if (failure !== undefined) throw failure;
      return { runs, worstMs };
    },
  };
}

describe('binary message abuse by a client on a Noise session through the relay', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-binary-abuse-'));
  const victimFile = path.join(dir, 'victim.txt');
  const attackerFile = path.join(dir, 'attacker.txt');
  const notTakenUpFile = path.join(dir, 'not-taken-up.txt');
  let relay: RelayFixture;
  let remote: RemoteAgentFixture;
  let victim: ExecClient;
  let victimRaw: RawRpcClient;
  let hostile: Hostile;

  beforeAll(async () => {
    relay = await startRelay();
    remote = await startRemoteAgent(relay.url, 'env-binary-abuse');
    const [attackerIdentity, victimIdentity] = await Promise.all([generateIdentity(), generateIdentity()]);
    victim = await connectThroughRelay(relay.url, remote, { identity: victimIdentity });
    // The victim's second session holds an open write handle the attacker will aim at.
    const victimChannel = await openRelayChannel(relayTarget(relay.url, remote, { identity: victimIdentity }));
    victimRaw = RawRpcClient.over(victimChannel);
    await victimRaw.initialize();
    expect((await victimRaw.request('fs/openWrite', { handleId: 'h1', path: uri(victimFile) })).error).toBeUndefined();
    expect((await victimRaw.request('fs/writeBlock', { handleId: 'h1', offset: 0, chunk: Buffer.from('victim bytes\n').toString('base64') })).error).toBeUndefined();

    const channel = await openRelayChannel(relayTarget(relay.url, remote, { identity: attackerIdentity }));
    const binary: Buffer[] = [];
    const { sendBinary, onBinaryMessage } = channel;
    if (!sendBinary || !onBinaryMessage) throw new Error('the Noise channel carries no binary messages');
    onBinaryMessage.call(channel, (message) => binary.push(Buffer.from(message)));
    const raw = RawRpcClient.over(channel);
    const unknownIdErrors: RawMessage[] = [];
    channel.onMessage((text) => {
      const message = JSON.parse(text) as RawMessage;
      if (message.id === -1 && message.error !== undefined) unknownIdErrors.push(message);
    });
    const init = await raw.request('initialize', { clientName: 'binary-abuse' });
    expect(init.result.capabilities).toMatchObject({ binaryOutput: true, binaryFileBlocks: true });
    hostile = { sendBinary: (bytes) => sendBinary.call(channel, bytes), raw, binary, unknownIdErrors };
  });
  afterAll(async () => {
    victimRaw?.close();
    hostile?.raw.close();
    victim?.close();
    remote?.stop();
    await relay?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends `bytes` and expects the next error on id -1 to be `error`. */
  async function expectUnknownIdError(bytes: Uint8Array, error: { code: number; message: string }): Promise<void> {
    const before = hostile.unknownIdErrors.length;
    await hostile.sendBinary(bytes);
    await hostile.raw.waitFor(() => hostile.unknownIdErrors.length > before);
    expect(hostile.unknownIdErrors[before]!.error).toEqual(error);
  }

  async function expectErrorOn(id: number, bytes: Uint8Array, error: { code: number; message: string }): Promise<void> {
    await hostile.sendBinary(bytes);
    const reply = await hostile.raw.waitFor((m) => m.id === id && m.method === undefined);
    expect(reply.error).toEqual(error);
  }

  it('before it takes binaryFileBlocks up (none, or binaryOutput only), an fs/writeBlock message to its own handle is refused and writes nothing', async () => {
    const victimLoop = startVictimLoop(victim);
    hostile.raw.notify('initialized', {});
    expect((await hostile.raw.request('fs/openWrite', { handleId: 'early', path: uri(notTakenUpFile) })).error).toBeUndefined();
    await expectUnknownIdError(encodeBinaryWriteBlock(900, 'early', 0, Buffer.from('not taken up'))!, UNEXPECTED);
    hostile.raw.notify('initialized', { binaryOutput: true });
    await expectUnknownIdError(encodeBinaryWriteBlock(901, 'early', 0, Buffer.from('output only'))!, UNEXPECTED);
    // No answer ever came on the ids it used: nothing was handled as a request.
    expect(hostile.raw.received.filter((m) => m.id === 900 || m.id === 901)).toEqual([]);
    expect((await hostile.raw.request('fs/commitWrite', { handleId: 'early' })).error).toBeUndefined();
    expect(statSync(notTakenUpFile).size).toBe(0);
    const { runs, worstMs } = await victimLoop.stop();
    expect(runs).toBeGreaterThan(0);
    console.log(`not taken up: victim ran ${runs} commands meanwhile, worst ${worstMs} ms`);
  });

  it('once taken up: malformed headers, lengths past the end, odd handle ids, agent→client kinds and unknown kinds are each answered with an error', async () => {
    const victimLoop = startVictimLoop(victim);
    hostile.raw.notify('initialized', { binaryOutput: true, binaryFileBlocks: true });
    expect((await hostile.raw.request('fs/openWrite', { handleId: 'mine', path: uri(attackerFile) })).error).toBeUndefined();
    // The control: a well-formed write to its own handle is taken (so the refusals below are not a dead path).
    await hostile.sendBinary(encodeBinaryWriteBlock(1000, 'mine', 0, Buffer.from('mine\n'))!);
    expect(await hostile.raw.waitFor((m) => m.id === 1000 && m.method === undefined)).toEqual({ id: 1000, result: {} });

    // Truncated headers: the magic alone, magic and kind, a header cut before its ids.
    await expectUnknownIdError(Buffer.from([BINARY_MESSAGE_MAGIC]), malformed('truncated'));
    await expectUnknownIdError(Buffer.from([BINARY_MESSAGE_MAGIC, 2]), malformed('truncated'));
    await expectUnknownIdError(encodeBinaryWriteBlock(1001, 'mine', 0, Buffer.alloc(0))!.subarray(0, 18), malformed('truncated'));
    // A handle id length past the end of the message: answered on the request id it could read.
    const pastEnd = encodeBinaryWriteBlock(1002, 'mine', 0, Buffer.alloc(0))!;
    pastEnd[2] = 255;
    await expectErrorOn(1002, pastEnd, malformed('truncated'));
    // An empty handle id, one that is not UTF-8, a request id and an offset above 2^53 - 1.
    const empty = encodeBinaryWriteBlock(1003, 'm', 0, Buffer.from('x'))!;
    empty[2] = 0;
    await expectErrorOn(1003, empty, malformed('empty-handle-id'));
    const notUtf8 = encodeBinaryWriteBlock(1004, 'mine', 0, Buffer.from('x'))!;
    notUtf8.set([0xff, 0xfe], 19);
    await expectErrorOn(1004, notUtf8, malformed('handle-id-not-utf8'));
    const hugeId = encodeBinaryWriteBlock(1005, 'mine', 0, Buffer.from('x'))!;
    hugeId.fill(0xff, 3, 11);
    await expectUnknownIdError(hugeId, malformed('request-id-out-of-range'));
    const hugeOffset = encodeBinaryWriteBlock(1006, 'mine', 0, Buffer.from('x'))!;
    hugeOffset.fill(0xff, 11, 19);
    await expectErrorOn(1006, hugeOffset, malformed('offset-out-of-range'));
    // The longest handle id the format carries (255 bytes), never opened.
    const longest = 'h'.repeat(255);
    await expectErrorOn(1007, encodeBinaryWriteBlock(1007, longest, 0, Buffer.from('x'))!, { code: -32004, message: `unknown write handle \`${longest}\`` });
    // The agent→client kinds and kinds that do not exist.
    await expectUnknownIdError(encodeBinaryProcessOutput('p1', 0, 'stdout', Buffer.from('forged output'))!, UNEXPECTED);
    await expectUnknownIdError(encodeBinaryReadBlockResult(1008, true, Buffer.from('forged read'))!, UNEXPECTED);
    await expectUnknownIdError(Buffer.from([BINARY_MESSAGE_MAGIC, 0, 1, 2, 3]), malformed('unknown-kind'));
    await expectUnknownIdError(Buffer.from([BINARY_MESSAGE_MAGIC, 0xff]), malformed('unknown-kind'));
    expect(hostile.raw.received.filter((m) => m.id === 1001 || m.id === 1005 || m.id === 1008)).toEqual([]);

    // Its session still works, and only its own write ever landed.
    expect((await hostile.raw.request('fs/commitWrite', { handleId: 'mine' })).error).toBeUndefined();
    expect(readFileSync(attackerFile, 'utf8')).toBe('mine\n');
    expect(hostile.binary).toEqual([]);
    const { runs, worstMs } = await victimLoop.stop();
    expect(runs).toBeGreaterThan(0);
    console.log(`malformed messages: victim ran ${runs} commands meanwhile, worst ${worstMs} ms`);
  });

  it("an fs/writeBlock to another session's open handle, or one never opened, is unknown to it: the victim's file gets only the victim's bytes", async () => {
    hostile.raw.notify('initialized', { binaryOutput: true, binaryFileBlocks: true });
    await expectErrorOn(1100, encodeBinaryWriteBlock(1100, 'h1', 0, Buffer.from('ATTACKER'))!, { code: -32004, message: 'unknown write handle `h1`' });
    await expectErrorOn(1101, encodeBinaryWriteBlock(1101, 'h1', 1 << 20, Buffer.from('ATTACKER'))!, { code: -32004, message: 'unknown write handle `h1`' });
    await expectErrorOn(1102, encodeBinaryWriteBlock(1102, 'never-opened', 0, Buffer.from('x'))!, { code: -32004, message: 'unknown write handle `never-opened`' });
    // The JSON form of the same request with a handle id of 64 KiB: refused by its bound, not echoed back.
    const reply = await hostile.raw.request('fs/writeBlock', { handleId: 'h'.repeat(65_536), offset: 0, chunk: Buffer.from('x').toString('base64') });
    expect(reply.error).toEqual({ code: -32602, message: 'invalid params: handleId: longer than 256 characters' });
    expect((await victimRaw.request('fs/commitWrite', { handleId: 'h1' })).error).toBeUndefined();
    expect(readFileSync(victimFile, 'utf8')).toBe('victim bytes\n');
  });

  it('a flood of 3,000 abusive binary messages: every one answered, the agent serves the attacker and a new client after, the victim keeps running', async () => {
    hostile.raw.notify('initialized', { binaryOutput: true, binaryFileBlocks: true });
    const victimLoop = startVictimLoop(victim);
    const before = hostile.unknownIdErrors.length;
    const kinds = [
      Buffer.from([BINARY_MESSAGE_MAGIC]),
      encodeBinaryProcessOutput('p', 1, 'stderr', Buffer.alloc(512, 0x41))!,
      encodeBinaryReadBlockResult(7, false, Buffer.alloc(512, 0x42))!,
      Buffer.from([BINARY_MESSAGE_MAGIC, 9, 9, 9]),
    ];
    const flood = 3000;
    const started = Date.now();
    const sends: Array<Promise<void>> = [];
    for (let i = 0; i < flood; i += 1) sends.push(hostile.sendBinary(kinds[i % kinds.length]!));
    await Promise.all(sends);
    await hostile.raw.waitFor(() => hostile.unknownIdErrors.length >= before + flood, 60_000);
    const floodMs = Date.now() - started;
    expect(hostile.unknownIdErrors.length).toBe(before + flood);
    // Its own session is still served: its command's output comes back (as binary output, which it
    // took up), and nothing else binary ever did.
    const exec = await hostile.raw.request('process/start', { processId: 'after-flood', argv: ['echo', 'still here'], cwd: uri(os.tmpdir()) });
    expect(exec.error).toBeUndefined();
    await hostile.raw.waitFor((m) => m.method === 'process/exited' && m.params?.processId === 'after-flood');
    expect(hostile.binary.map((bytes) => decodeBinaryMessage(bytes))).toEqual([
      { ok: true, message: { kind: 'processOutput', processId: 'after-flood', seq: expect.any(Number), stream: 'stdout', chunk: Buffer.from('still here\n') } },
    ]);
    const { runs, worstMs } = await victimLoop.stop();
    expect(runs).toBeGreaterThan(0);
    expect(worstMs).toBeLessThan(5_000);
    // A new client still connects and runs a command.
    const late = await connectThroughRelay(relay.url, remote);
    try {
      expect((await (await late.exec(['echo', 'late'], { cwd: os.tmpdir() })).completion).stdout.toString()).toBe('late\n');
    } finally {
      late.close();
    }
    console.log(`flood: ${flood} messages answered in ${floodMs} ms; victim ran ${runs} commands meanwhile, worst ${worstMs} ms`);
  }, 90_000);
});
