import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { z } from 'zod';
import * as protocol from '../../../../src/protocol/index.js';
import { ErrorCode, RpcError } from '../../../../src/protocol/error-codes.js';
import { parseOrThrow } from '../../../../src/protocol/validation.js';

/**
 * Fuzzing the protocol validators: `parseOrThrow` with every schema exported by src/protocol, on
 * random values, on schema-shaped objects whose members take tricky values, and on mutations of
 * valid params. The only exception allowed is an RpcError with the requested code (-32602 by
 * default, -32600 when asked), whose message names a field.
 */

/** Every zod schema src/protocol exports, by export name. */
const schemas: Array<[string, z.ZodType]> = Object.entries(protocol)
  .filter(([, value]) => typeof value === 'object' && value !== null && typeof (value as { safeParse?: unknown }).safeParse === 'function')
  .map(([name, value]) => [name, value as z.ZodType]);

/** Known member names of an object schema (from its shape), for schema-shaped inputs. */
function keysOf(schema: z.ZodType): string[] {
  const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
  return shape && typeof shape === 'object' ? Object.keys(shape) : [];
}

const outcomes = { accepted: 0, rejected: 0 };
const perSchema = new Map<string, number>();

function check(name: string, schema: z.ZodType, value: unknown, code: number = ErrorCode.InvalidParams): void {
  perSchema.set(name, (perSchema.get(name) ?? 0) + 1);
  try {
    parseOrThrow(schema, value, code);
    outcomes.accepted++;
  } catch (error) {
    if (!(error instanceof RpcError) || error.code !== code) {
      throw new Error(`${name}: parseOrThrow threw ${String(error)} on ${safeShow(value)}`);
    }
    expect(error.message).toMatch(/^invalid params: \S/);
    outcomes.rejected++;
  }
}

function safeShow(value: unknown): string {
  try {
    return (JSON.stringify(value) ?? String(value)).slice(0, 300);
  } catch {
    return String(value).slice(0, 300);
  }
}

/** Values that reach the validators' edge cases: URIs, base64, ids, numbers at the limits. */
const tricky: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    undefined,
    true,
    false,
    0,
    -1,
    1,
    0.5,
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER + 2,
    -0,
    1e308,
    '',
    'x',
    'file:///tmp',
    'file:///tmp/a%00b',
    'file:///tmp/%2e%2e/etc',
    'file://host/tmp',
    'file:relative',
    'file:///',
    '/tmp',
    'C:\\\\x',
    'aGk=',
    'aGk',
    '====',
    'a\u0000b',
    'x'.repeat(257),
    'stdout',
    'pty',
    'interrupt',
    'follow',
    'all',
    'none',
    [],
    [''],
    ['sh', '-c', 'true'],
    ['a\u0000'],
    {},
    { '': 'x' },
    { 'A=B': 'x' },
    { PATH: '/bin' },
    { inherit: 'core' },
    { maxDepth: 3 },
  ),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.integer()), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.constant(null)), { maxKeys: 4 }),
);

/** An object with a random subset of the schema's own keys (plus maybe a stranger), each with a tricky value. */
function shapedArb(keys: string[]): fc.Arbitrary<Record<string, unknown>> {
  if (keys.length === 0) return fc.dictionary(fc.string({ maxLength: 8 }), tricky, { maxKeys: 4 });
  return fc
    .tuple(
      fc.subarray(keys),
      fc.array(tricky, { minLength: keys.length, maxLength: keys.length }),
      fc.option(fc.tuple(fc.string({ maxLength: 8 }), tricky)),
    )
    .map(([present, values, extra]) => {
      const out: Record<string, unknown> = {};
      present.forEach((key, i) => (out[key] = values[i]));
      if (extra) out[extra[0]] = extra[1];
      return out;
    });
}

/** Valid params for the requests a server validates, to be mutated. */
const validSamples: Record<string, unknown> = {
  InitializeParams: { clientName: 'fuzz', resumeSessionId: 'abc' },
  ProcessStartParams: {
    processId: 'p1',
    argv: ['sh', '-c', 'true'],
    cwd: 'file:///tmp',
    env: { PATH: '/bin' },
    envPolicy: { inherit: 'core', exclude: ['X'], set: { A: 'b' }, includeOnly: ['PATH'] },
    tty: false,
    pipeStdin: true,
    arg0: 'sh',
  },
  ProcessReadParams: { processId: 'p1', afterSeq: 3, maxBytes: 1024, waitMs: 10 },
  ProcessWriteParams: { processId: 'p1', chunk: 'aGk=', writeId: 'w1', closeStdin: true },
  ProcessSignalParams: { processId: 'p1', signal: 'interrupt' },
  ProcessTerminateParams: { processId: 'p1' },
  ProcessReadResult: { chunks: [{ seq: 1, stream: 'stdout', chunk: 'aGk=' }], nextSeq: 2, exited: true, exitCode: 0, closed: true, failure: null, sandboxDenied: false },
  ProcessOutputNotification: { processId: 'p1', seq: 1, stream: 'stderr', chunk: 'aGk=' },
  ProcessExitedNotification: { processId: 'p1', seq: 2, exitCode: 1, sandboxDenied: false },
  FsWalkParams: { path: 'file:///tmp', options: { maxDepth: 2, maxDirectories: 10, maxEntries: 10, followDirectorySymlinks: false } },
  FsCopyParams: { sourcePath: 'file:///tmp/a', destinationPath: 'file:///tmp/b', recursive: true },
  FsWriteFileParams: { path: 'file:///tmp/x', dataBase64: 'aGk=' },
  FsReadBlockParams: { handleId: 'h', offset: 0, len: 10 },
};

type Mutation = { kind: 'drop'; key: number } | { kind: 'set'; key: number; value: unknown } | { kind: 'deep'; path: number[]; value: unknown };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), key: fc.nat() }),
  fc.record({ kind: fc.constant('set' as const), key: fc.nat(), value: tricky }),
  fc.record({ kind: fc.constant('deep' as const), path: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }), value: tricky }),
);

function applyMutations(sample: unknown, mutations: readonly Mutation[]): unknown {
  const root = structuredClone(sample) as Record<string, unknown>;
  for (const m of mutations) {
    const keys = Object.keys(root);
    if (keys.length === 0) break;
    if (m.kind === 'drop') delete root[keys[m.key % keys.length]!];
    else if (m.kind === 'set') root[keys[m.key % keys.length]!] = m.value;
    else {
      // Walk into nested objects/arrays by index, then replace the member reached.
      let node: unknown = root;
      for (let depth = 0; depth < m.path.length; depth++) {
        if (typeof node !== 'object' || node === null) break;
        const inner = Object.keys(node);
        if (inner.length === 0) break;
        const key = inner[m.path[depth]! % inner.length]!;
        if (depth === m.path.length - 1) (node as Record<string, unknown>)[key] = m.value;
        else node = (node as Record<string, unknown>)[key];
      }
    }
  }
  return root;
}

describe('fuzz: protocol validators', () => {
  it('covers every schema src/protocol exports', () => {
    expect(schemas.length).toBeGreaterThanOrEqual(30);
    for (const name of Object.keys(validSamples)) {
      const schema = schemas.find(([n]) => n === name)?.[1];
      expect(schema, name).toBeDefined();
      // The samples are valid to begin with, so their mutations probe the boundary.
      expect(() => parseOrThrow(schema!, validSamples[name]), name).not.toThrow();
    }
  });

  it('random values: only RpcError -32602 (300 inputs per schema)', () => {
    for (const [name, schema] of schemas) {
      fc.assert(fc.property(fc.oneof(tricky, fc.anything({ maxDepth: 2 })), (value) => check(name, schema, value)), { numRuns: 300 });
    }
  });

  it('schema-shaped objects with tricky members: only RpcError -32602 (1,000 inputs per schema)', () => {
    for (const [name, schema] of schemas) {
      fc.assert(fc.property(shapedArb(keysOf(schema)), (value) => check(name, schema, value)), { numRuns: 1_000 });
    }
  });

  it('mutated valid params: only RpcError with the requested code (1,500 inputs per sample)', () => {
    for (const [name, sample] of Object.entries(validSamples)) {
      const schema = schemas.find(([n]) => n === name)![1];
      fc.assert(
        fc.property(fc.array(mutationArb, { minLength: 1, maxLength: 3 }), fc.boolean(), (mutations, asInvalidRequest) =>
          check(name, schema, applyMutations(sample, mutations), asInvalidRequest ? ErrorCode.InvalidRequest : ErrorCode.InvalidParams),
        ),
        { numRuns: 1_500 },
      );
    }
  });

  it('the inputs were both accepted and rejected, for at least 50,000 validations in total', () => {
    const total = outcomes.accepted + outcomes.rejected;
    console.log(`protocol validators: ${total} inputs over ${schemas.length} schemas (${outcomes.accepted} accepted, ${outcomes.rejected} rejected)`);
    expect(total).toBeGreaterThanOrEqual(50_000);
    expect(outcomes.accepted).toBeGreaterThan(100);
    expect(outcomes.rejected).toBeGreaterThan(1_000);
    for (const [name] of schemas) expect(perSchema.get(name) ?? 0, name).toBeGreaterThanOrEqual(1_300);
  });
});

describe('process/output params as JSON text', () => {
  it('are exactly JSON.stringify of the params object (any process id, seq, stream and bytes)', () => {
    fc.assert(
      fc.property(fc.string(), fc.nat(), fc.constantFrom('stdout', 'stderr', 'pty'), fc.uint8Array({ maxLength: 512 }), (processId, seq, stream, bytes) => {
        const chunk = Buffer.from(bytes);
        const expected = JSON.stringify({ processId, seq, stream, chunk: chunk.toString('base64') });
        expect(protocol.processOutputParamsJson(processId, seq, stream, chunk)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});
