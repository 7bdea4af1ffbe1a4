import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { createStream, type RotatingFileStream } from 'rotating-file-stream';

/** Defaults and bounds of an audit log (docs/limits.md). */
export const AUDIT_LOG_LIMITS = {
  /** The live file is rotated once it reaches this size (`--audit-log-max-bytes`). */
  defaultMaxBytes: 10 * 1024 * 1024,
  minMaxBytes: 1024,
  maxMaxBytes: 1024 * 1024 * 1024,
  /** Rotated files kept beside the live one (`--audit-log-keep`): FILE.1 (newest) … FILE.N. */
  defaultKeep: 5,
  maxKeep: 1000,
  /**
   * Lines waiting for the disk beyond this are dropped (and counted in the next line written), so a
   * client cannot grow the agent's memory by outpacing a slow disk.
   */
  maxPendingBytes: 8 * 1024 * 1024,
  /**
   * A path or host longer than this, as a client sent it (a refused request is recorded before any
   * validation), is cut to this many characters and marked with a trailing `…`.
   */
  maxFieldChars: 4096,
} as const;

/** `value` cut to {@link AUDIT_LOG_LIMITS.maxFieldChars} characters (a trailing `…` says it was). */
export function boundedAuditField(value: string): string {
  return value.length <= AUDIT_LOG_LIMITS.maxFieldChars ? value : `${value.slice(0, AUDIT_LOG_LIMITS.maxFieldChars)}…`;
}

export interface AuditLogOptions {
  /** The live file; rotated files are `FILE.1` … `FILE.keep`. */
  file: string;
  maxBytes?: number;
  keep?: number;
  /** Told about write errors (the log never throws into the code that records). */
  onError?: (error: Error) => void;
  /**
   * Whether reads are recorded too (the agent's `--audit-log-reads`: fs reads and their paths).
   * Off by default: reads are frequent, and what changed or ran is the record most operators want.
   */
  reads?: boolean;
}

/** One audit record: what happened; `time` is added. */
export type AuditRecord = Readonly<Record<string, unknown>> & { readonly event: string };

/**
 * The operator's record of who did what: one JSON object per line, `{"time": ISO-8601, "event": …,
 * …}`, appended to a file of mode 0600 (tightened if it already exists) and rotated by size with
 * `rotating-file-stream` (classic rotation: FILE → FILE.1 → … → FILE.keep, the oldest dropped).
 * Never written to stdout. Separate from metrics, which stay content-free: this file holds
 * identities, commands and paths, and is only for the host's operator.
 */
export class AuditLog {
  private dropped = 0;
  private closed = false;

  private constructor(
    private readonly stream: RotatingFileStream,
    private readonly onError: (error: Error) => void,
    /** Whether the app records reads too (see {@link AuditLogOptions.reads}). */
    readonly reads: boolean,
  ) {
    stream.on('error', (error: Error) => this.onError(error));
  }

  static async open(options: AuditLogOptions): Promise<AuditLog> {
    const maxBytes = options.maxBytes ?? AUDIT_LOG_LIMITS.defaultMaxBytes;
    const keep = options.keep ?? AUDIT_LOG_LIMITS.defaultKeep;
    if (!Number.isInteger(maxBytes) || maxBytes < AUDIT_LOG_LIMITS.minMaxBytes || maxBytes > AUDIT_LOG_LIMITS.maxMaxBytes) {
      throw new Error(`audit log max bytes must be an integer from ${AUDIT_LOG_LIMITS.minMaxBytes} to ${AUDIT_LOG_LIMITS.maxMaxBytes}, got ${maxBytes}`);
    }
    if (!Number.isInteger(keep) || keep < 1 || keep > AUDIT_LOG_LIMITS.maxKeep) {
      throw new Error(`audit log keep must be an integer from 1 to ${AUDIT_LOG_LIMITS.maxKeep}, got ${keep}`);
    }
    const file = path.resolve(options.file);
    await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const stream = createStream(path.basename(file), { path: path.dirname(file), size: `${maxBytes}B`, rotate: keep, mode: 0o600 });
    await new Promise<void>((resolve, reject) => {
      stream.once('open', () => resolve());
      stream.once('error', reject);
    });
    // A file that existed before keeps its mode when opened: make it the operator's alone.
    await chmod(file, 0o600);
    return new AuditLog(stream, options.onError ?? (() => undefined), options.reads ?? false);
  }

  /** Appends one line (`time` first). Never throws; drops (and later counts) lines past the bound. */
  record(record: AuditRecord): void {
    if (this.closed) return;
    if (this.stream.writableLength > AUDIT_LOG_LIMITS.maxPendingBytes) {
      this.dropped += 1;
      return;
    }
    if (this.dropped > 0) {
      this.write({ event: 'audit.dropped', lines: this.dropped });
      this.dropped = 0;
    }
    this.write(record);
  }

  private write(record: AuditRecord): void {
    let line: string;
    try {
      line = `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`;
    } catch (error) {
      this.onError(error as Error);
      return;
    }
    this.stream.write(line);
  }

  /** Flushes what is buffered and closes the file. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      this.stream.once('finish', () => resolve());
      this.stream.once('error', () => resolve());
      this.stream.end();
    });
  }
}
