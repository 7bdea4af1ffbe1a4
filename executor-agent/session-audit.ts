import { boundedAuditField, type AuditLog } from '../src/audit/audit-log.js';
import { RpcError } from '../src/protocol/error-codes.js';
import { FsMethod, HttpMethod } from '../src/protocol/methods.js';
import type { ProcessStartParams } from '../src/protocol/process.js';
import type { ProcessEvent } from './managed-process.js';

/** What one audited request's line holds besides time, client, session, method and outcome. */
interface AuditedRequest {
  event: string;
  family: 'fs' | 'http';
  /** `change`: always recorded; `read`: only with `--audit-log-reads` (`AuditLog.reads`). */
  kind: 'change' | 'read';
  fields(params: Record<string, unknown>, result: unknown): Record<string, unknown>;
}

/** The named params that are paths (`file://` URIs), as given (null when not a string). */
function paths(...names: string[]): AuditedRequest['fields'] {
  return (params) => Object.fromEntries(names.map((name) => [name, typeof params[name] === 'string' ? boundedAuditField(params[name]) : null]));
}

/**
 * Where an `http/request` went: its HTTP method and the URL's origin (scheme, host, port), and the
 * response status. Never the path, query, headers or bodies: URLs and headers often carry
 * credentials (query keys, tokens), and the origin is what says which service was reached.
 */
function httpRequestFields(params: Record<string, unknown>, result: unknown): Record<string, unknown> {
  let target: URL | undefined;
  try {
    target = typeof params.url === 'string' ? new URL(params.url) : undefined;
  } catch {
    target = undefined;
  }
  const scheme = target ? target.protocol.replace(/:$/, '') : null;
  const defaultPort = scheme === 'https' ? 443 : scheme === 'http' ? 80 : null;
  const status = (result as { status?: unknown } | undefined)?.status;
  return {
    httpMethod: typeof params.method === 'string' ? boundedAuditField(params.method) : null,
    scheme: scheme === null ? null : boundedAuditField(scheme),
    host: target ? boundedAuditField(target.hostname) : null,
    port: target ? (target.port === '' ? defaultPort : Number(target.port)) : null,
    ...(typeof status === 'number' ? { status } : {}),
  };
}

/** Requests with an audit line of their own (process starts have theirs: `processStarting`). */
const AUDITED_REQUESTS: Readonly<Record<string, AuditedRequest>> = {
  [FsMethod.WriteFile]: { event: 'fs.write', family: 'fs', kind: 'change', fields: paths('path') },
  [FsMethod.CreateDirectory]: { event: 'fs.createDirectory', family: 'fs', kind: 'change', fields: paths('path') },
  [FsMethod.Remove]: { event: 'fs.remove', family: 'fs', kind: 'change', fields: paths('path') },
  [FsMethod.Copy]: { event: 'fs.copy', family: 'fs', kind: 'change', fields: paths('sourcePath', 'destinationPath') },
  [FsMethod.OpenWrite]: { event: 'fs.openWrite', family: 'fs', kind: 'change', fields: paths('path') },
  [FsMethod.SetAttributes]: { event: 'fs.setAttributes', family: 'fs', kind: 'change', fields: paths('path') },
  [HttpMethod.Request]: { event: 'http.request', family: 'http', kind: 'change', fields: httpRequestFields },
  [FsMethod.ReadFile]: { event: 'fs.read', family: 'fs', kind: 'read', fields: paths('path') },
  [FsMethod.Open]: { event: 'fs.open', family: 'fs', kind: 'read', fields: paths('path') },
  [FsMethod.ReadDirectory]: { event: 'fs.readDirectory', family: 'fs', kind: 'read', fields: paths('path') },
  [FsMethod.Walk]: { event: 'fs.walk', family: 'fs', kind: 'read', fields: paths('path') },
};

/** A process being started, told its events (`onEvent`), written as `process.start` and `process.exit`. */
export interface AuditedProcess {
  observe(event: ProcessEvent): void;
  started(): void;
  failed(error: unknown): void;
}

/**
 * The audit lines of one connection's client (its identity: the Noise identity a relay client proved,
 * or `local`) and of the session it attached: sessions opened, processes started (argv, cwd) and
 * ended (exit code, duration, output bytes), fs changes (paths, result), HTTP requests (method,
 * origin, status) and, when the log records reads, fs reads (paths). Written to the agent's
 * `AuditLog`; see docs/observability.md § Audit log.
 */
export class ConnectionAudit {
  constructor(
    private readonly log: AuditLog,
    /** The client's identity fingerprint (`12D3KooW…`), or `local`. */
    readonly client: string,
    private readonly transport: string,
  ) {}

  sessionOpened(session: string, resumed: boolean): void {
    this.log.record({ event: 'session.open', family: 'session', client: this.client, transport: this.transport, session, resumed });
  }

  /** Whether `method` gets a line from `requestAnswered` (reads only when the log records reads). */
  audits(method: string): boolean {
    const audited = Object.hasOwn(AUDITED_REQUESTS, method) ? AUDITED_REQUESTS[method] : undefined;
    return audited !== undefined && (audited.kind === 'change' || this.log.reads);
  }

  /**
   * An audited request that was answered: fs changes (paths), `http/request` (where it went, its
   * status) and, with `--audit-log-reads`, fs reads (paths). `error` is its JSON-RPC error (absent
   * when it succeeded, `result` then its result).
   */
  requestAnswered(session: string, method: string, params: unknown, outcomeOf: { result?: unknown; error?: unknown }): void {
    if (!this.audits(method)) return;
    const audited = AUDITED_REQUESTS[method]!;
    const given = (params !== null && typeof params === 'object' ? params : {}) as Record<string, unknown>;
    this.log.record({
      event: audited.event,
      family: audited.family,
      client: this.client,
      session,
      method,
      ...audited.fields(given, outcomeOf.result),
      ...outcome(outcomeOf.error),
    });
  }

  processStarting(session: string, params: ProcessStartParams): AuditedProcess {
    const base = { family: 'process', client: this.client, session, processId: params.processId };
    const startedAt = Date.now();
    let outputBytes = 0;
    let exited = false;
    return {
      observe: (event) => {
        if (event.type === 'output') outputBytes += event.chunk.length;
        else if (event.type === 'exited' && !exited) {
          exited = true;
          this.log.record({ event: 'process.exit', ...base, exitCode: event.exitCode, durationMs: Date.now() - startedAt, outputBytes });
        }
      },
      started: () => this.log.record({ event: 'process.start', ...base, argv: params.argv, cwd: params.cwd, tty: params.tty === true, ok: true }),
      failed: (error) => this.log.record({ event: 'process.start', ...base, argv: params.argv, cwd: params.cwd, tty: params.tty === true, ...outcome(error) }),
    };
  }
}

function outcome(error: unknown): { ok: true } | { ok: false; errorCode: number | null; error: string } {
  if (error === undefined) return { ok: true };
  return { ok: false, errorCode: error instanceof RpcError ? error.code : null, error: error instanceof Error ? error.message : String(error) };
}

/**
 * The agent's own lines about its drain (SIGTERM): `agent.drain` when it begins (processes running,
 * sessions), `agent.drained` when it ends (how many of those processes the drain terminated).
 */
export const DrainAudit = {
  started(log: AuditLog, runningProcesses: number, sessions: number): void {
    log.record({ event: 'agent.drain', family: 'agent', runningProcesses, sessions });
  },
  ended(log: AuditLog, outcome: { running: number; terminated: number; durationMs: number }): void {
    log.record({ event: 'agent.drained', family: 'agent', ...outcome });
  },
};

/**
 * A client the agent refused at the secure channel: `client_not_authorized` with the identity it
 * proved, or `handshake_failed` (no identity proven). Without these lines an operator could not
 * answer "who tried to run something here".
 */
export const ClientRefusalAudit = {
  refused(log: AuditLog, refusal: { client: string | null; reason: 'client_not_authorized' | 'handshake_failed' }): void {
    log.record({ event: 'channel.refused', family: 'channel', client: refusal.client, reason: refusal.reason });
  },
};
