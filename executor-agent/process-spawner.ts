import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * The spawner process: a small node process the agent starts once, which forks every pipe-mode child
 * and hands the child's stdio back to the agent (SCM_RIGHTS over its IPC channel).
 *
 * Why: `fork()` marks every page of the forking process copy-on-write, and each page the agent then
 * writes again faults once. An agent moving output has ~32 MiB of buffers in rotation (V8 frees
 * ArrayBuffers only at a young collection, every 32 MiB of them), so each process it spawned itself
 * cost it ~8,200 page faults in the first 32 MiB of output after the fork — on this project's VMs
 * ~135 ms of CPU each, a quarter to a third of the agent's CPU for a 256 MiB transfer. The spawner's
 * own memory is small and idle, so its forks cost next to nothing, and the agent reads the child's
 * pipes directly as before: no copy is added.
 *
 * The messages of both sides are defined here; `spawner-main.ts` is the spawner's entry point.
 */

export type SpawnerReply =
  /** The child exists: first, so that its pid is here even if the spawner dies before `spawned`. */
  | { type: 'forked'; id: number; pid: number }
  /** One of the child's stdio sockets; the message carries it as its handle. Before `spawned`. */
  | { type: 'stream'; id: number; stream: 'stdin' | 'stdout' | 'stderr' }
  | { type: 'spawned'; id: number }
  | { type: 'failed'; id: number; code: string | undefined; message: string }
  | { type: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null };

export interface SpawnOptions {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  argv0?: string;
  pipeStdin: boolean;
}

export interface SpawnRequest extends SpawnOptions {
  type: 'spawn';
  id: number;
}

/** A spawn that failed: `code` as node's spawn reports it (ENOENT, EACCES, …). */
export class SpawnError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

/** A child forked by the spawner: its own process group (detached), its stdio sockets here. */
export class SpawnedChild {
  private exitListener: ((code: number | null, signal: NodeJS.Signals | null) => void) | undefined;
  private exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly pid: number,
    readonly stdin: Socket | undefined,
    readonly stdout: Socket,
    readonly stderr: Socket,
  ) {}

  /** Once: the child's exit, or — when the spawner was lost while it ran — SIGKILL to its group. */
  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    this.exitListener = listener;
    if (this.exit) listener(this.exit.code, this.exit.signal);
  }

  exited(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exit) return;
    this.exit = { code, signal };
    this.exitListener?.(code, signal);
  }
}

interface PendingSpawn {
  request: SpawnRequest;
  pid?: number;
  streams: Partial<Record<'stdin' | 'stdout' | 'stderr', Socket>>;
  resolve: (child: SpawnedChild) => void;
  reject: (error: Error) => void;
}

/**
 * The spawner's entry point. From the TypeScript sources (the test suites, which run after `npm run
 * build`) node cannot run the `.ts` file, so the built one is used.
 */
function spawnerEntry(): string {
  const here = import.meta.url;
  return fileURLToPath(here.endsWith('.ts') ? new URL('../dist/executor-agent/spawner-main.js', here) : new URL('./spawner-main.js', here));
}

/** Starts pipe-mode children through the spawner process; starts (and restarts) it as needed. */
export class ProcessSpawner {
  private helper: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, PendingSpawn>();
  private readonly running = new Map<number, SpawnedChild>();

  /** The child started, its stdio here; rejects with a SpawnError when it could not start. */
  spawn(options: SpawnOptions): Promise<SpawnedChild> {
    const helper = this.helper ?? this.start();
    const request: SpawnRequest = { type: 'spawn', id: this.nextId++, ...options };
    return new Promise((resolve, reject) => {
      this.pending.set(request.id, { request, streams: {}, resolve, reject });
      this.holdOpen();
      helper.send(request, (error: Error | null) => {
        if (error) this.settle(request.id, new SpawnError(`the process spawner is unavailable: ${error.message}`, undefined));
      });
    });
  }

  /** The spawner's pid while it runs (for tests and diagnostics). */
  get spawnerPid(): number | undefined {
    return this.helper?.pid;
  }

  private start(): ChildProcess {
    // Its own session: a terminal's Ctrl-C reaches the agent (which may drain) and not the spawner.
    const helper = spawn(process.execPath, [spawnerEntry()], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json', detached: true });
    this.helper = helper;
    helper.on('message', (message: SpawnerReply, handle: unknown) => this.receive(message, handle as Socket | undefined));
    helper.on('error', (error) => this.lost(helper, `could not run: ${error.message}`));
    helper.on('exit', (code, signal) => this.lost(helper, signal ? `was killed (${signal})` : `exited (code ${code})`));
    helper.unref();
    helper.channel?.unref();
    return helper;
  }

  /** The IPC channel keeps this process alive only while a spawn is pending or a child runs. */
  private holdOpen(): void {
    if (this.pending.size + this.running.size > 0) this.helper?.channel?.ref();
    else this.helper?.channel?.unref();
  }

  private receive(message: SpawnerReply, handle: Socket | undefined): void {
    switch (message.type) {
      case 'forked': {
        const spawning = this.pending.get(message.id);
        if (spawning) spawning.pid = message.pid;
        return;
      }
      case 'stream': {
        const spawning = this.pending.get(message.id);
        if (spawning && handle) spawning.streams[message.stream] = handle;
        else handle?.destroy();
        return;
      }
      case 'spawned': {
        const spawning = this.pending.get(message.id);
        if (!spawning) return;
        const { stdout, stderr, stdin } = spawning.streams;
        if (spawning.pid === undefined || !stdout || !stderr || (spawning.request.pipeStdin && !stdin)) {
          abandon(spawning);
          this.settle(message.id, new SpawnError('the process spawner did not hand over the child\'s stdio', undefined));
          return;
        }
        const child = new SpawnedChild(spawning.pid, stdin, stdout, stderr);
        this.running.set(message.id, child);
        this.settle(message.id, child);
        return;
      }
      case 'failed':
        this.settle(message.id, new SpawnError(message.message, message.code));
        return;
      case 'exit': {
        const child = this.running.get(message.id);
        this.running.delete(message.id);
        this.holdOpen();
        child?.exited(message.code, message.signal);
        return;
      }
    }
  }

  private settle(id: number, outcome: SpawnedChild | Error): void {
    const spawning = this.pending.get(id);
    if (!spawning) return;
    this.pending.delete(id);
    this.holdOpen();
    if (outcome instanceof Error) spawning.reject(outcome);
    else spawning.resolve(outcome);
  }

  /**
   * The spawner died (killed — by one of its commands, say —, out of memory): no exit of its
   * children can be learned any more, so they are not left running unseen — each child's group gets
   * SIGKILL; a running one reports that exit, a spawn still being handed over fails. The next spawn
   * starts a new spawner.
   *
   * One case is beyond reach: a spawn whose pid the spawner had not reported when it died. The
   * spawner learns the pid only once the child has exec'd, and a child can kill it sooner than it
   * writes the report (`kill -9 $PPID` as its first command, against a spawner just started, wins
   * nearly always). That child, if it exists, is unknown here: the start fails with a message that
   * says so. A command can as well leave its process group (`setsid`) and outlive any kill of it;
   * commands run as the agent's user, which no supervision by that same user contains.
   */
  private lost(helper: ChildProcess, how: string): void {
    if (this.helper !== helper) return;
    this.helper = undefined;
    for (const [id, spawning] of [...this.pending]) {
      abandon(spawning);
      const outcome =
        spawning.pid === undefined
          ? 'before it reported the process: the process may be running, unsupervised'
          : 'while handing the process over: the process was killed';
      this.pending.delete(id);
      spawning.reject(new SpawnError(`the process spawner ${how} ${outcome}`, undefined));
    }
    for (const [id, child] of [...this.running]) {
      this.running.delete(id);
      killGroup(child.pid);
      child.exited(null, 'SIGKILL');
    }
  }
}

/** Gives up a spawn being handed over: the sockets received so far closed, its group killed if its pid came. */
function abandon(spawning: PendingSpawn): void {
  for (const socket of Object.values(spawning.streams)) socket?.destroy();
  if (spawning.pid !== undefined) killGroup(spawning.pid);
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

let shared: ProcessSpawner | undefined;

/** The spawner of this process's agent(s): started with the first pipe-mode child. */
export function processSpawner(): ProcessSpawner {
  shared ??= new ProcessSpawner();
  return shared;
}
