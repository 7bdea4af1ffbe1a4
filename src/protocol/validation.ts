import { z } from 'zod';
import { ErrorCode, RpcError } from './error-codes.js';
import { parseFileUri } from './path-uri.js';

/**
 * Validates `value` against `schema`. On failure throws an RpcError (-32602 by default) whose
 * message names the first offending field, e.g. `invalid params: argv: must not be empty`.
 */
export function parseOrThrow<S extends z.ZodType>(
  schema: S,
  value: unknown,
  code: number = ErrorCode.InvalidParams,
  what = 'invalid params',
): z.output<S> {
  let result: z.ZodSafeParseResult<z.output<S>>;
  try {
    result = schema.safeParse(value ?? {}) as z.ZodSafeParseResult<z.output<S>>;
  } catch {
    // zod 4's length checks can throw on hostile shapes (e.g. `{length: Object.create(null)}`,
    // found by test/unit/src/protocol/validation.fuzz.test.ts): still a bad input, never a crash.
    throw new RpcError(code, `${what}: (params): malformed value`);
  }
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : '(params)';
  const message = issue ? describeIssue(issue, value) : 'invalid';
  throw new RpcError(code, `${what}: ${field}: ${message}`);
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  if (issue.code === 'invalid_type') {
    return valueAt(root, issue.path) === undefined
      ? `missing required field (expected ${issue.expected})`
      : `expected ${issue.expected}`;
  }
  return issue.message;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = root;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

/** Strict standard base64 (the wire's byte encoding), with padding. */
const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A base64 string, decoded to a Buffer. Canonical base64 (what every encoder writes) re-encodes to
 * itself: that one native decode and encode accepts it without running the pattern over every
 * character (the pattern was 20-30% of a client's CPU while receiving process output). Anything
 * else gets the exact pattern check, so the accepted set is unchanged.
 */
export const base64Bytes = z.string().transform((s, ctx) => {
  const bytes = Buffer.from(s, 'base64');
  if (bytes.toString('base64') !== s && !BASE64_PATTERN.test(s)) {
    ctx.addIssue({ code: 'custom', message: 'not valid base64' });
    return z.NEVER;
  }
  return bytes;
});

/** A `file://` URI, transformed to the native absolute path. */
export const fileUri = z.string().transform((value, ctx) => {
  const parsed = parseFileUri(value);
  if (!parsed.ok) {
    ctx.addIssue({ code: 'custom', message: parsed.reason });
    return z.NEVER;
  }
  return parsed.path;
});

/** Caller-chosen ids (processId, writeId, handleId, requestId): non-empty, bounded. */
export const callerId = z.string().min(1, 'must not be empty').max(256, 'longer than 256 characters');

/** A JSON-safe non-negative integer. */
export const nonNegativeInt = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
