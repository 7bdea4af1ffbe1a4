import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { Session, DEFAULT_SESSION_LIMITS, type SessionAttachment, type SessionLimits } from './session.js';
import type { ManagedProcess } from './managed-process.js';

export interface SessionRegistryOptions {
  /** How long a detached session (and its processes) is kept for `resumeSessionId`. */
  retentionMs: number;
  /** Sessions held at once, attached or detached, by every client together (the backstop). */
  maxSessions: number;
  /** Sessions one client identity holds at once (see `ExecutorAgent.serve` for what an identity is). */
  maxSessionsPerClient?: number;
  sessionLimits?: SessionLimits;
}

export const DEFAULT_SESSION_RETENTION_MS = 5 * 60_000;
export const DEFAULT_MAX_SESSIONS = 256;
export const DEFAULT_MAX_SESSIONS_PER_CLIENT = 32;
/** The identity of every client that reached the agent without a Noise identity (WebSocket listener, stdio). */
export const LOCAL_CLIENT = 'local';

/**
 * Every session the agent holds, attached or waiting to be resumed, counted per client identity.
 * A new session past a quota first evicts a detached session (ending it as retention expiry
 * would): at the identity's own quota its own longest-detached one, at the global bound the
 * longest-detached one of the identity holding the most sessions. Only when there is none to
 * evict is `initialize` refused.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  /** Sessions per owner, in the order they were opened. */
  private readonly byOwner = new Map<string, Set<Session>>();
  private readonly maxSessionsPerClient: number;

  constructor(private readonly options: SessionRegistryOptions) {
    this.maxSessionsPerClient = options.maxSessionsPerClient ?? DEFAULT_MAX_SESSIONS_PER_CLIENT;
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Sessions `owner` holds, attached or detached. */
  sessionsOf(owner: string): number {
    return this.byOwner.get(owner)?.size ?? 0;
  }

  open(attachment: SessionAttachment, resumeSessionId?: string | null, owner: string = LOCAL_CLIENT): Session {
    if (resumeSessionId) {
      const session = this.sessions.get(resumeSessionId);
      // Only the identity that opened a session resumes it; to any other it does not exist.
      if (!session || session.owner !== owner) throw new RpcError(ErrorCode.NotFound, `unknown or expired session: ${resumeSessionId}`);
      session.attach(attachment);
      return session;
    }
    // Local clients (listener, stdio) have no identity to count by: only the global bound applies to them.
    if (owner !== LOCAL_CLIENT && this.sessionsOf(owner) >= this.maxSessionsPerClient && !this.evictDetached(owner)) {
      throw new RpcError(
        ErrorCode.InvalidRequest,
        `too many sessions for this client identity (limit ${this.maxSessionsPerClient}); close or resume one of its sessions`,
      );
    }
    if (this.sessions.size >= this.options.maxSessions && !this.evictDetached(this.largestOwnerWithDetached())) {
      throw new RpcError(ErrorCode.InvalidRequest, `too many sessions (limit ${this.options.maxSessions})`);
    }
    const session = new Session(this.options.sessionLimits ?? DEFAULT_SESSION_LIMITS, owner);
    session.attach(attachment);
    this.sessions.set(session.id, session);
    let owned = this.byOwner.get(owner);
    if (!owned) this.byOwner.set(owner, (owned = new Set()));
    owned.add(session);
    return session;
  }

  detach(session: Session, attachment: SessionAttachment): void {
    session.detach(attachment, this.options.retentionMs, () => this.end(session));
  }

  end(session: Session): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    const owned = this.byOwner.get(session.owner);
    owned?.delete(session);
    if (owned?.size === 0) this.byOwner.delete(session.owner);
    session.end();
  }

  /** Processes of every session, attached or detached, whose exit is not known yet. */
  runningProcesses(): ManagedProcess[] {
    return [...this.sessions.values()].flatMap((session) => [...session.processes.values()].filter((proc) => !proc.exited));
  }

  /** Processes whose `process/start` is still being answered: forked, or about to be, not yet registered. */
  processesStarting(): number {
    let starting = 0;
    for (const session of this.sessions.values()) starting += session.starting.size;
    return starting;
  }

  endAll(): void {
    for (const session of [...this.sessions.values()]) this.end(session);
  }

  /** Ends `owner`'s longest-detached session; false when it has none detached. */
  private evictDetached(owner: string | undefined): boolean {
    if (owner === undefined) return false;
    let oldest: Session | undefined;
    for (const session of this.byOwner.get(owner) ?? []) {
      if (session.detachedAt !== null && (!oldest || session.detachedAt < oldest.detachedAt!)) oldest = session;
    }
    if (!oldest) return false;
    this.end(oldest);
    return true;
  }

  private largestOwnerWithDetached(): string | undefined {
    let largest: string | undefined;
    let largestSize = 0;
    for (const [owner, owned] of this.byOwner) {
      if (owned.size <= largestSize) continue;
      if ([...owned].some((s) => s.detachedAt !== null)) {
        largest = owner;
        largestSize = owned.size;
      }
    }
    return largest;
  }
}
