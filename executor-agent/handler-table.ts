import type { AgentConfig } from './agent-config.js';
import type { Session } from './session.js';
import type { ProcessTelemetry } from './agent-events.js';
import type { ProcessStartParams } from '../src/protocol/process.js';
import type { AuditedProcess } from './session-audit.js';

/** What a method handler may use: the caller's session and the agent's configuration. */
export interface HandlerContext {
  readonly session: Session;
  /** Aborted when the session moves to another connection or ends (long-polls stop on it). */
  readonly detachSignal: AbortSignal;
  readonly config: AgentConfig;
  /** Process lifecycle metrics; absent when telemetry is off. */
  readonly telemetry?: ProcessTelemetry;
  /**
   * Pushes a notification on the connection that carried this request. Resolves once the transport
   * accepted it, so a handler that awaits each push is slowed down by a slow client (backpressure);
   * rejects once that connection is closed.
   */
  readonly notify: (method: string, params: unknown) => Promise<void>;
  /**
   * Waits until a response of about `bytes` (its estimated wire size) fits in the connection's and
   * the agent's in-flight response budgets; the room is given back once the response is queued on
   * the transport. Call before building a large result. Absent outside a connection (unit tests).
   */
  readonly admitResponseBytes?: (bytes: number) => Promise<void>;
  /** True when the connection took `binaryFileBlocks` up: `fs/readBlock` answers with a binary message. */
  readonly binaryFileBlocks?: boolean;
  /** With `--audit-log`: the audit lines of a process about to start (session-audit.ts). */
  readonly auditProcess?: (params: ProcessStartParams) => AuditedProcess;
}

/** Validates its own params (through src/protocol) and returns the wire result. */
export type MethodHandler = (params: unknown, context: HandlerContext) => Promise<unknown>;

/** One method family's handlers, keyed by wire method name. */
export type HandlerTable = Readonly<Record<string, MethodHandler>>;
