import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'vitest';
import type { AgentConfig } from '../../executor-agent/agent-config.js';
import type { RelayRegistrationEvent } from '../../executor-agent/relay-registration.js';
import { ExecClient, type ProcessHandle } from '../../src/client/exec-client.js';
import type { RelayLinkEvent, RelayTarget } from '../../src/client/relay-channel.js';
import type { ClientProcessEvent } from '../../src/client/process-events.js';
import { CLI_PATH, isolatedStateEnv } from './cli.js';
import type { Identity } from '../../src/noise/identity.js';
import { TEST_TOKEN, startRemoteAgent, type RemoteAgentFixture, type TestRegistrationOptions } from './relay-harness.js';

export const cwd = os.tmpdir();
export const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

/** Resolves when `predicate` holds (polled), rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  await eventually(async () => predicate(), timeoutMs, what, 10);
}

/** Polls `probe` until it returns something truthy and returns that; rejects after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T>, timeoutMs: number, what: string, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// The relay as a separate process (the built CLI)

export interface RelayProcess {
  readonly url: string;
  readonly port: number;
  readonly child: ChildProcess;
  /** Resolves once the process has exited. */
  readonly exited: Promise<void>;
  kill(signal: NodeJS.Signals): Promise<void>;
  stderr(): string;
}

let tokenFile: string | undefined;
function relayTokenFile(): string {
  if (!tokenFile) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'execrelay-resilience-'));
    tokenFile = path.join(dir, 'tokens');
    writeFileSync(tokenFile, `${TEST_TOKEN}\n`, { mode: 0o600 });
  }
  return tokenFile;
}

/**
 * `execrelay relay --listen 127.0.0.1:PORT --token-file F` (port 0: any), resolved once it listens.
 * Its state (the bindings file) is in a fresh `XDG_STATE_HOME` unless `env` sets one.
 */
export async function spawnRelay(port = 0, extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}, startTimeoutMs = 20_000): Promise<RelayProcess> {
  const child = spawn(process.execPath, [CLI_PATH, 'relay', '--listen', `127.0.0.1:${port}`, '--token-file', relayTokenFile(), ...extraArgs], {
    env: { ...process.env, EXECRELAY_LOG_LEVEL: 'warn', ...isolatedStateEnv(env), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`relay did not start in ${startTimeoutMs / 1000} s: ${stderr}`)), startTimeoutMs);
    child.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const newline = buffered.indexOf('\n');
      if (newline !== -1) {
        clearTimeout(timer);
        resolve(buffered.slice(0, newline).trim());
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`relay exited with ${code}: ${stderr}`));
    });
  });
  return {
    url,
    port: Number(new URL(url).port),
    child,
    exited,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
    stderr: () => stderr,
  };
}

/** VmRSS of a process in KiB (Linux), or null. */
export async function rssKiB(pid: number): Promise<number | null> {
  const { readFile } = await import('node:fs/promises');
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Agent and client with fast, observable reconnects

export interface ObservedAgent extends RemoteAgentFixture {
  events: Array<RelayRegistrationEvent & { at: number }>;
  registrations(): number;
}

export async function startObservedAgent(
  relayUrl: string,
  environmentId: string,
  options: TestRegistrationOptions & { config?: Partial<AgentConfig>; identity?: Identity } = {},
): Promise<ObservedAgent> {
  const { config, identity, ...registrationOptions } = options;
  const events: Array<RelayRegistrationEvent & { at: number }> = [];
  const remote = await startRemoteAgent(relayUrl, environmentId, {
    ...(config ? { config } : {}),
    ...(identity ? { identity } : {}),
    registration: {
      backoff: { initialMs: 100, maxMs: 1000 },
      ...registrationOptions,
      onEvent: (event) => {
        events.push({ ...event, at: Date.now() });
        registrationOptions.onEvent?.(event);
      },
    },
  });
  return { ...remote, events, registrations: () => events.filter((e) => e.type === 'registered').length };
}

export interface ObservedClient {
  client: ExecClient;
  linkEvents: Array<RelayLinkEvent & { at: number }>;
  reconnects(): number;
}

export async function connectObservedClient(relayUrl: string, agent: ObservedAgent, extra: Partial<RelayTarget> = {}): Promise<ObservedClient> {
  const linkEvents: Array<RelayLinkEvent & { at: number }> = [];
  const client = await ExecClient.connect({
    relay: relayUrl,
    environmentId: agent.environmentId,
    agentKey: agent.identity.publicIdentity,
    token: TEST_TOKEN,
    backoff: { initialMs: 100, maxMs: 1000 },
    ...extra,
    onLinkEvent: (event) => {
      linkEvents.push({ ...event, at: Date.now() });
      extra.onLinkEvent?.(event);
    },
  });
  return { client, linkEvents, reconnects: () => linkEvents.filter((e) => e.type === 'connected' && e.reconnect).length };
}

// ---------------------------------------------------------------------------------------------
// The numbered-line command and its check

/** A shell command printing `line 1` … `line N`, one every few ms (sleep is a separate program). */
export function numberedLinesCommand(count: number, intervalSeconds = 0.005): string[] {
  return ['sh', '-c', `i=0; while [ $i -lt ${count} ]; do i=$((i+1)); echo "line $i"; sleep ${intervalSeconds}; done`];
}

export interface LineWatcher {
  /** Lines received so far (complete ones). */
  readonly lines: string[];
  readonly events: ClientProcessEvent[];
  /** Resolves once the event stream ended (the process completed or failed). */
  readonly done: Promise<void>;
  /** The longest wait between two consecutive lines of which the later arrived at or after `since` (ms since the epoch). */
  worstGapMs(since?: number): number;
}

/** Consumes a handle's events (it must be started with `streamEvents: true`), splitting stdout into lines. */
export function watchLines(handle: ProcessHandle): LineWatcher {
  const lines: string[] = [];
  const arrivals: number[] = [];
  const events: ClientProcessEvent[] = [];
  let partial = '';
  const done = (async () => {
    for await (const event of handle.events) {
      events.push(event);
      if (event.type !== 'output') continue;
      partial += event.chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        arrivals.push(Date.now());
      }
    }
  })();
  done.catch(() => undefined);
  return {
    lines,
    events,
    done,
    worstGapMs(since = 0) {
      let worst = 0;
      for (let i = 1; i < arrivals.length; i++) if (arrivals[i]! >= since) worst = Math.max(worst, arrivals[i]! - arrivals[i - 1]!);
      return worst;
    },
  };
}

/** Every line exactly once and in order, one exit (code 0) and one close, seqs strictly increasing. */
export function expectCompleteRun(watcher: LineWatcher, count: number): void {
  expect(watcher.lines.length).toBe(count);
  const expected = Array.from({ length: count }, (_, i) => `line ${i + 1}`);
  // Compare in one go but report the first difference readably.
  const firstBad = watcher.lines.findIndex((line, i) => line !== expected[i]);
  expect(firstBad, `first unexpected line at index ${firstBad}: ${watcher.lines[firstBad]}`).toBe(-1);
  expect(watcher.events.filter((e) => e.type === 'exited')).toEqual([expect.objectContaining({ type: 'exited', exitCode: 0 })]);
  expect(watcher.events.filter((e) => e.type === 'closed').length).toBe(1);
  const seqs = watcher.events.map((e) => e.seq).filter((seq) => seq > 0);
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]!).toBeGreaterThan(seqs[i - 1]!);
}
