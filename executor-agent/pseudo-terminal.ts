import type * as NodePty from '@lydell/node-pty';
import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';

export type PseudoTerminal = NodePty.IPty;
export type PseudoTerminalModule = typeof NodePty;

/** The package that gives `tty: true` processes their PTY: node-pty with prebuilt binaries, no compiler needed. */
export const PTY_PACKAGE = '@lydell/node-pty';

let loading: Promise<PseudoTerminalModule> | undefined;

/**
 * The PTY library, loaded on the first `tty: true` process rather than at start, so an agent whose
 * install has no PTY binary (an unsupported platform, `npm install --omit=optional`) still runs
 * everything else; `tty: true` then fails with an RpcError that says so, and the agent carries on.
 */
export async function loadPseudoTerminal(): Promise<PseudoTerminalModule> {
  loading ??= import(PTY_PACKAGE).then((loaded: PseudoTerminalModule & { default?: PseudoTerminalModule }) => {
    const library = typeof loaded.spawn === 'function' ? loaded : loaded.default;
    if (typeof library?.spawn !== 'function') throw new Error(`${PTY_PACKAGE} has no spawn()`);
    return library;
  });
  try {
    return await loading;
  } catch (error) {
    const reason = ((error as Error).message ?? String(error)).split('\n')[0];
    throw new RpcError(
      ErrorCode.Internal,
      `this agent has no PTY support: install ${PTY_PACKAGE} with its platform package (npm install without --omit=optional; prebuilt for linux, darwin and win32 on x64 and arm64), or run without tty (${reason})`,
    );
  }
}
