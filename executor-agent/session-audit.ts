import type { AuditLog } from '../src/audit/audit-log.js';
import { RpcError } from '../src/protocol/error-codes.js';
import { FsMethod } from '../src/protocol/methods.js';
import type { ProcessStartParams } from '../src/protocol/process.js';
import type { ProcessEvent } from './managed-process.js';

/** The fs methods that change the file system: each is one audit line with its paths. */
const FS_CHANGES: Readonly<Record<string, { event: string; paths: readonly string[] }>> = {
  [FsMethod.WriteFile]: { event: 'fs.write', paths: ['path'] },
  [FsMethod.CreateDirectory]: { event: 'fs.createDirectory', paths: ['path'] },
  [FsMethod.Remove]: { event: 'fs.remove', paths: ['path'] },
  [FsMethod.Copy]: { event: 'fs.copy', paths: ['sourcePath', 'destinationPath'] },
  [FsMethod.OpenWrite]: { event: 'fs.openWrite', paths: ['path'] },
  [FsMethod.SetAttributes]: { event: 'fs.setAttributes', paths: ['path'] },
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
 * ended (exit code, duration, output bytes), and fs changes (paths, result). Written to the agent's
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

  /** Whether `method` is audited by `fsChanged`. */
  isFsChange(method: string): boolean {
    return Object.hasOwn(FS_CHANGES, method);
  }

  /** An fs change that was answered: `error` is its JSON-RPC error (absent when it succeeded). */
  fsChanged(session: string, method: string, params: unknown, error?: unknown): void {
    const change = FS_CHANGES[method];
    if (!change) return;
    const given = (params ?? {}) as Record<string, unknown>;
    const paths = Object.fromEntries(change.paths.map((name) => [name, typeof given[name] === 'string' ? given[name] : null]));
    this.log.record({ event: change.event, family: 'fs', client: this.client, session, method, ...paths, ...outcome(error) });
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
