import { ErrorCode, RpcError } from '../src/protocol/error-codes.js';

/** A Node.js system error (`ENOENT: no such file or directory, open '/x'`). */
interface SystemError extends Error {
  code?: string;
  errno?: number;
  syscall?: string;
}

function isSystemError(error: unknown): error is SystemError {
  return error instanceof Error && typeof (error as SystemError).code === 'string';
}

/** The OS error code (`ENOENT`, `EACCES`, ...) of a thrown value, if it has one. */
export function errorCode(error: unknown): string | undefined {
  return isSystemError(error) ? error.code : undefined;
}

/**
 * strerror(3) wording for the errors fs operations commonly meet, where libuv words them
 * differently (`file already exists`, `illegal operation on a directory`); the wording is what
 * both glibc and musl (the codex binary's libc) print.
 */
const STRERROR: Readonly<Record<string, string>> = {
  EEXIST: 'File exists',
  EISDIR: 'Is a directory',
  ENOTDIR: 'Not a directory',
  ENOTEMPTY: 'Directory not empty',
  EACCES: 'Permission denied',
  EPERM: 'Operation not permitted',
  EROFS: 'Read-only file system',
  ENOSPC: 'No space left on device',
};

/**
 * The OS reason without the path, in the codex (Rust `io::Error`) format:
 * `No such file or directory (os error 2)`, `Permission denied (os error 13)`.
 */
export function osReason(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  if (!isSystemError(error) || typeof error.errno !== 'number') return error.message;
  const match = /^[A-Z0-9_]+: ([^,]+)/.exec(error.message);
  const description = (error.code !== undefined ? STRERROR[error.code] : undefined) ?? match?.[1] ?? error.code ?? 'unknown error';
  const capitalized = description.charAt(0).toUpperCase() + description.slice(1);
  return `${capitalized} (os error ${Math.abs(error.errno)})`;
}

/**
 * The wire error for anything an fs operation threw: an RpcError stays as it is, a missing path is
 * -32004, everything else (permission denied included) is -32603 with the OS reason. Never a stack.
 */
export function toFsRpcError(error: unknown): RpcError {
  if (error instanceof RpcError) return error;
  if (errorCode(error) === 'ENOENT') return new RpcError(ErrorCode.NotFound, osReason(error));
  return new RpcError(ErrorCode.Internal, osReason(error));
}

/** -32600 for a request the agent refuses as given (codex `InvalidInput`). */
export function invalidInput(message: string): RpcError {
  return new RpcError(ErrorCode.InvalidRequest, message);
}
