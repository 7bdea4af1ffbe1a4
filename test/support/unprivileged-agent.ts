import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import os from 'node:os';
import { startCli } from './cli.js';

/** uid and gid of `nobody`. */
const NOBODY = 65534;

export interface UnprivilegedAgent {
  url: string;
  child: ChildProcessWithoutNullStreams;
  /** SIGTERM, resolved once the agent has exited. */
  stop(): Promise<void>;
}

/**
 * The built CLI agent listening on loopback, as `nobody` when the tests run as root (so that file
 * permissions apply to it); its home and state directory are the system's temporary directory,
 * which `nobody` may write.
 */
export async function startUnprivilegedAgent(): Promise<UnprivilegedAgent> {
  const asNobody = process.getuid?.() === 0;
  const { firstLine, child, stop } = await startCli(
    ['agent', '--listen', 'ws://127.0.0.1:0'],
    { EXECRELAY_LOG_LEVEL: 'warn', HOME: os.tmpdir(), XDG_STATE_HOME: os.tmpdir() },
    asNobody ? { uid: NOBODY, gid: NOBODY } : {},
  );
  return { url: firstLine, child, stop };
}
