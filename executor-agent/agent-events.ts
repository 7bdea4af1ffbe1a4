import type { ResponseOutcome } from '../src/jsonrpc/connection.js';
import type { TraceCarrier } from '../src/jsonrpc/message.js';
import type { ProcessResult } from '../src/telemetry/labels.js';

/*
 * The agent's telemetry port: what the exec server reports about itself (metrics and traces hook
 * onto this; the adapter is telemetry/agent-telemetry.ts). Every label value is from a fixed set.
 */

/** One request being served: run the handler inside it, finish it when the response is queued. */
export interface RequestObservation {
  /** Runs the handler with the server span (if any) as the active context. */
  run<T>(fn: () => T): T;
  /** Counts the request and ends its span; later calls are ignored. */
  finish(outcome: ResponseOutcome): void;
}

/** One process's lifecycle: `started()` after a successful spawn, `onFinished` as ManagedProcess's hook. */
export interface ProcessObservation {
  started(): void;
  readonly onFinished: (result: ProcessResult, durationMs: number) => void;
}

/** What method handlers get (through `HandlerContext.telemetry`). */
export interface ProcessTelemetry {
  /** Call before `ManagedProcess.start`; each process counts its completion exactly once. */
  processStarting(): ProcessObservation;
}

/** The agent's drain (SIGTERM; `ExecutorAgent.drain`). */
export interface DrainTelemetry {
  /** The drain began: the agent takes no new work from now on. */
  started(): void;
  /** The drain timeout passed with `count` processes still running, which are now terminated. */
  terminating(count: number): void;
}

/** What `ExecConnection` needs (and `ExecutorAgent`: the drain). */
export interface ExecServerTelemetry {
  /** A connection was accepted on `transportKind`; returns the call for when it closes. */
  connectionOpened(transportKind: string): () => void;
  /**
   * A request reached dispatch. `routed` says whether this connection has a handler for it (an
   * unrouted one is labelled and named `unknown`); `carrier` is the request's `trace`.
   */
  requestStarted(method: string, routed: boolean, carrier: TraceCarrier | undefined): RequestObservation;
  readonly process: ProcessTelemetry;
  readonly drain: DrainTelemetry;
}
