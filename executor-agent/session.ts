import { randomUUID } from 'node:crypto';
import { FileHandleTable } from './file-handles.js';
import { WriteHandleTable } from './write-handles.js';
import type { ManagedProcess, ProcessEvent } from './managed-process.js';

/** The side of a connection a session pushes events to and aborts long-polls on. */
export interface SessionAttachment {
  pushProcessEvent(processId: string, event: ProcessEvent): void;
  /** True while pushed events are still being sent (processes then coalesce pipe output). */
  readonly outputInFlight?: boolean;
  /** Aborted when the session moves to another connection or ends. */
  readonly detachSignal: AbortSignal;
  abortAttachment(reason: string): void;
}

export interface SessionLimits {
  /** Processes (running or finished but retained) one session may hold. */
  maxProcesses: number;
  /** Finished (closed) processes kept for `process/read` before the oldest is forgotten. */
  maxFinishedProcesses: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { maxProcesses: 1024, maxFinishedProcesses: 256 };

/**
 * One client's session: its processes outlive a dropped connection for the retention window and
 * are re-attached by `initialize {resumeSessionId}`.
 */
export class Session {
  readonly id = randomUUID();
  readonly processes = new Map<string, ManagedProcess>();
  /** processIds whose start is in progress (so a concurrent duplicate start is refused). */
  readonly starting = new Set<string>();
  /** Open `fs/open` handles; closed when the session ends. */
  readonly fileHandles = new FileHandleTable();
  /** Open `fs/openWrite` handles (extension); their temporary files are removed when the session ends. */
  readonly writeHandles = new WriteHandleTable();
  private readonly finishedOrder: string[] = [];
  private attachment: SessionAttachment | null = null;
  private outputPaused = false;
  private expiryTimer: NodeJS.Timeout | undefined;
  private detachedSince: number | null = null;
  private endedFlag = false;

  /** `owner`: the client identity whose quota this session counts against (`SessionRegistry`). */
  constructor(
    readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS,
    readonly owner = 'local',
  ) {}

  /** When the session lost its connection (`performance.now()`), or null while attached. */
  get detachedAt(): number | null {
    return this.detachedSince;
  }

  get attached(): SessionAttachment | null {
    return this.attachment;
  }

  attach(attachment: SessionAttachment): void {
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    this.detachedSince = null;
    const previous = this.attachment;
    this.attachment = attachment;
    if (previous && previous !== attachment) previous.abortAttachment('session resumed by another connection');
  }

  /** Detaches `attachment` if it is the current one; `onExpire` runs after `retentionMs`. */
  detach(attachment: SessionAttachment, retentionMs: number, onExpire: () => void): void {
    if (this.attachment !== attachment) return;
    this.attachment = null;
    this.detachedSince = performance.now();
    this.flushCoalescedOutput();
    // Nobody to push to: keep reading output into the retained window instead of blocking.
    this.setOutputPaused(false);
    this.expiryTimer = setTimeout(onExpire, retentionMs);
    this.expiryTimer.unref();
  }

  /** Pauses or resumes reading every process's output (backpressure from the attached connection). */
  setOutputPaused(paused: boolean): void {
    if (paused === this.outputPaused) return;
    this.outputPaused = paused;
    for (const proc of this.processes.values()) {
      if (paused) proc.pauseOutput();
      else proc.resumeOutput();
    }
  }

  get isOutputPaused(): boolean {
    return this.outputPaused;
  }

  /** True while the attached connection is still sending pushed events. */
  get outputInFlight(): boolean {
    return this.attachment?.outputInFlight === true;
  }

  /** Publishes the output each process coalesced while sends were in flight (they have settled). */
  flushCoalescedOutput(): void {
    for (const proc of this.processes.values()) proc.flushCoalescedOutput();
  }

  push(processId: string, event: ProcessEvent): void {
    this.attachment?.pushProcessEvent(processId, event);
    if (event.type === 'closed') this.rememberFinished(processId);
  }

  /** True once `end` ran: a process whose start completes afterwards is killed, not kept. */
  get ended(): boolean {
    return this.endedFlag;
  }

  /** Kills every process and closes every open file handle; the session is unusable afterwards. */
  end(): void {
    this.endedFlag = true;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    this.attachment?.abortAttachment('session ended');
    this.attachment = null;
    for (const proc of this.processes.values()) proc.kill();
    void this.fileHandles.closeAll();
    void this.writeHandles.closeAll();
  }

  private rememberFinished(processId: string): void {
    this.finishedOrder.push(processId);
    while (this.finishedOrder.length > this.limits.maxFinishedProcesses) {
      const oldest = this.finishedOrder.shift()!;
      this.processes.delete(oldest);
    }
  }
}
