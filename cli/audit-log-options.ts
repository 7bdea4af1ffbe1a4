import { Option, type Command } from 'commander';
import { AUDIT_LOG_LIMITS, AuditLog } from '../src/audit/audit-log.js';
import type { Logger } from '../src/logging/logger.js';
import { positiveInteger } from './option-parsers.js';

export interface AuditLogCommandOptions {
  auditLog?: string;
  auditLogMaxBytes: number;
  auditLogKeep: number;
  /** The agent's `--audit-log-reads` (the relay has no such flag). */
  auditLogReads?: boolean;
}

/** `--audit-log FILE`, `--audit-log-max-bytes N`, `--audit-log-keep N` (the agent's and the relay's). */
export function addAuditLogOptions(command: Command, what: string): Command {
  return command
    .addOption(
      new Option('--audit-log <file>', `append the operator's audit record (JSON lines, mode 0600) of ${what} to this file (off unless given)`).env('EXECRELAY_AUDIT_LOG'),
    )
    .addOption(
      new Option('--audit-log-max-bytes <n>', 'rotate the audit log when it reaches this size')
        .env('EXECRELAY_AUDIT_LOG_MAX_BYTES')
        .argParser(positiveInteger(AUDIT_LOG_LIMITS.maxMaxBytes))
        .default(AUDIT_LOG_LIMITS.defaultMaxBytes),
    )
    .addOption(
      new Option('--audit-log-keep <n>', 'rotated audit log files to keep (FILE.1 newest … FILE.N)')
        .env('EXECRELAY_AUDIT_LOG_KEEP')
        .argParser(positiveInteger(AUDIT_LOG_LIMITS.maxKeep))
        .default(AUDIT_LOG_LIMITS.defaultKeep),
    );
}

/** `--audit-log-reads` (the agent's): fs reads get audit lines too. */
export function addAuditLogReadsOption(command: Command): Command {
  return command.addOption(
    new Option('--audit-log-reads', 'also record fs reads in the audit log (fs/readFile, fs/open, fs/readDirectory, fs/walk: their paths); needs --audit-log')
      .env('EXECRELAY_AUDIT_LOG_READS')
      .default(false),
  );
}

/** Opens the audit log the options name (undefined without `--audit-log`); a bad path or size is an error at startup. */
export async function openAuditLog(options: AuditLogCommandOptions, logger: Logger): Promise<AuditLog | undefined> {
  if (options.auditLog === undefined) {
    if (options.auditLogReads) throw new Error('--audit-log-reads (EXECRELAY_AUDIT_LOG_READS) needs --audit-log FILE');
    return undefined;
  }
  if (options.auditLog.trim() === '') throw new Error('--audit-log (EXECRELAY_AUDIT_LOG) is empty: give a file, or unset it');
  try {
    const log = await AuditLog.open({
      file: options.auditLog,
      maxBytes: options.auditLogMaxBytes,
      keep: options.auditLogKeep,
      reads: options.auditLogReads ?? false,
      onError: (error) => logger.error({ err: error.message }, 'audit log write failed'),
    });
    logger.info({ file: options.auditLog, maxBytes: options.auditLogMaxBytes, keep: options.auditLogKeep, reads: options.auditLogReads ?? false }, 'audit log open');
    return log;
  } catch (error) {
    throw new Error(`--audit-log ${options.auditLog}: ${(error as Error).message}`);
  }
}
