import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';
import { Session, DEFAULT_SESSION_LIMITS, type SessionAttachment, type SessionLimits } from './session.js';

export interface SessionRegistryOptions {
  /** How long a detached session (and its processes) is kept for `resumeSessionId`. */
  retentionMs: number;
  /** Sessions held at once, attached or detached. */
  maxSessions: number;
  sessionLimits?: SessionLimits;
}

export const DEFAULT_SESSION_RETENTION_MS = 5 * 60_000;
export const DEFAULT_MAX_SESSIONS = 256;

/** Every session the agent holds, attached or waiting to be resumed. */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly options: SessionRegistryOptions) {}

  get size(): number {
    return this.sessions.size;
  }

  open(attachment: SessionAttachment, resumeSessionId?: string | null): Session {
    if (resumeSessionId) {
      const session = this.sessions.get(resumeSessionId);
      if (!session) throw new RpcError(ErrorCode.NotFound, `unknown or expired session: ${resumeSessionId}`);
      session.attach(attachment);
      return session;
    }
    if (this.sessions.size >= this.options.maxSessions) {
      throw new RpcError(ErrorCode.InvalidRequest, `too many sessions (limit ${this.options.maxSessions})`);
    }
    const session = new Session(this.options.sessionLimits ?? DEFAULT_SESSION_LIMITS);
    session.attach(attachment);
    this.sessions.set(session.id, session);
    return session;
  }

  detach(session: Session, attachment: SessionAttachment): void {
    session.detach(attachment, this.options.retentionMs, () => this.end(session));
  }

  end(session: Session): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    session.end();
  }

  endAll(): void {
    for (const session of [...this.sessions.values()]) this.end(session);
  }
}
