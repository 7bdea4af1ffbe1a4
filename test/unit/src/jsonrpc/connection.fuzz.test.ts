import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseMessage, type IncomingMessage } from '../../../../src/jsonrpc/message.js';
import { JsonRpcConnection } from '../../../../src/jsonrpc/connection.js';
import type { MessageTransport } from '../../../../src/transport/message-transport.js';

/**
 * Fuzzing the JSON-RPC message parser (`parseMessage`) and the connection's receive path. 45,000
 * inputs here; with the relay frame decoder's 105,000 and the protocol validators' (see
 * fuzz-protocol.test.ts) the decoders see well over 100,000 random inputs, with zero exceptions.
 */

const kinds = new Map<IncomingMessage['kind'], number>();

/** parseMessage never throws, and what it classifies obeys the wire rules. */
function checkParse(raw: string): void {
  let parsed: IncomingMessage;
  try {
    parsed = parseMessage(raw);
  } catch (error) {
    throw new Error(`parseMessage threw on ${JSON.stringify(raw).slice(0, 200)}: ${String(error)}`);
  }
  kinds.set(parsed.kind, (kinds.get(parsed.kind) ?? 0) + 1);
  const isId = (id: unknown) => typeof id === 'string' || (typeof id === 'number' && Number.isSafeInteger(id));
  switch (parsed.kind) {
    case 'request':
      expect(isId(parsed.message.id)).toBe(true);
      expect(typeof parsed.message.method).toBe('string');
      expect(parsed.message.method.length).toBeGreaterThan(0);
      if (parsed.message.trace) expect(typeof parsed.message.trace.traceparent).toBe('string');
      break;
    case 'notification':
      expect(typeof parsed.message.method).toBe('string');
      expect(parsed.message.method.length).toBeGreaterThan(0);
      break;
    case 'response':
      expect(isId(parsed.id)).toBe(true);
      break;
    case 'error-response':
      expect(isId(parsed.id)).toBe(true);
      expect(typeof parsed.error.code).toBe('number');
      expect(typeof parsed.error.message).toBe('string');
      break;
    case 'invalid':
      expect(typeof parsed.reason).toBe('string');
      if (parsed.id !== undefined) expect(isId(parsed.id)).toBe(true);
      break;
  }
}

/** Values that make the interesting members interesting. */
const trickyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, 2 ** 53, -(2 ** 53), 1e308, '', 'x', 'initialize', 'process/start', [], {}),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 20 }),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.integer(), fc.string({ maxLength: 6 }), fc.constant(null)), { maxKeys: 3 }),
);

/** Objects built from the JSON-RPC members, each present or not, with any value. */
const envelopeArb = fc.record(
  {
    id: trickyValue,
    method: trickyValue,
    params: fc.oneof(trickyValue, fc.jsonValue({ maxDepth: 3 })),
    result: fc.oneof(trickyValue, fc.jsonValue({ maxDepth: 2 })),
    error: fc.oneof(trickyValue, fc.record({ code: trickyValue, message: trickyValue, data: trickyValue }, { requiredKeys: [] })),
    trace: fc.oneof(trickyValue, fc.record({ traceparent: trickyValue, tracestate: trickyValue }, { requiredKeys: [] })),
    jsonrpc: fc.constantFrom('2.0', 2, null),
    __proto__: fc.constantFrom({ polluted: true }, null),
  },
  { requiredKeys: [] },
);

const validMessages = [
  '{"id":1,"method":"initialize","params":{"clientName":"x"}}',
  '{"id":"a-7","method":"process/start","params":{"processId":"p","argv":["sh"],"cwd":"file:///tmp","env":{}},"trace":{"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}',
  '{"method":"process/output","params":{"processId":"p","seq":1,"stream":"stdout","chunk":"aGk="}}',
  '{"method":"initialized"}',
  '{"id":3,"result":{"sessionId":"s"}}',
  '{"id":4,"error":{"code":-32602,"message":"invalid params: argv: must not be empty","data":{"x":1}}}',
];

type TextMutation =
  | { kind: 'flip'; at: number; char: string }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'truncate'; at: number };

const textMutationArb: fc.Arbitrary<TextMutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), char: fc.constantFrom('{', '}', '"', ':', ',', '[', ']', '0', '-', 'e', '\\', ' ', '\u0000', '\ud800', 'n') }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), text: fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('null', '"id":', '"method":', '1e999', '-0', '[]', '{}', '\\u0000')) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

function mutateText(text: string, mutations: readonly TextMutation[]): string {
  let out = text;
  for (const m of mutations) {
    const at = out.length === 0 ? 0 : m.at % (out.length + 1);
    switch (m.kind) {
      case 'flip':
        out = out.slice(0, at) + m.char + out.slice(at + 1);
        break;
      case 'delete':
        out = out.slice(0, at) + out.slice(at + m.length);
        break;
      case 'insert':
        out = out.slice(0, at) + m.text + out.slice(at);
        break;
      case 'truncate':
        out = out.slice(0, at);
        break;
    }
  }
  return out;
}

describe('fuzz: JSON-RPC message parser', () => {
  it('never throws on random text (10,000 inputs)', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 120 }), (raw) => checkParse(raw)), { numRuns: 10_000 });
  });

  it('never throws on random JSON values (10,000 inputs)', () => {
    fc.assert(fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => checkParse(JSON.stringify(value) ?? 'null')), { numRuns: 10_000 });
  });

  it('classifies random envelopes by the wire rules (10,000 inputs)', () => {
    fc.assert(
      fc.property(envelopeArb, (envelope) => {
        let raw: string;
        try {
          raw = JSON.stringify(envelope);
        } catch {
          return; // not serialisable (a BigInt could not occur; defensive)
        }
        checkParse(raw);
      }),
      { numRuns: 10_000 },
    );
  });

  it('never throws on mutated valid messages (10,000 inputs)', () => {
    fc.assert(
      fc.property(fc.constantFrom(...validMessages), fc.array(textMutationArb, { minLength: 1, maxLength: 4 }), (message, mutations) =>
        checkParse(mutateText(message, mutations)),
      ),
      { numRuns: 10_000 },
    );
  });

  it('the inputs reached every classification', () => {
    for (const kind of ['request', 'notification', 'response', 'error-response', 'invalid'] as const) {
      expect(kinds.get(kind) ?? 0, kind).toBeGreaterThan(0);
    }
    expect([...kinds.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(40_000);
  });
});

/**
 * A transport that records what the connection sends and lets the test inject inbound messages
 * (also while paused: a burst of injected messages is one network read). `paused` is how many
 * pauses are in force (the connection pauses at its bound on unsent error answers and resumes once
 * they have gone out).
 */
function memoryTransport(): MessageTransport & { inject(raw: string): void; sent: string[]; readonly paused: number } {
  let onMessage: ((raw: string) => void) | undefined;
  const sent: string[] = [];
  let paused = 0;
  return {
    kind: 'memory',
    closed: false,
    sent,
    get paused() {
      return paused;
    },
    send: async (message) => {
      sent.push(message);
    },
    onMessage: (listener) => {
      onMessage = listener;
    },
    onClose: () => undefined,
    pauseReceiving: () => void paused++,
    resumeReceiving: () => void paused--,
    close: () => undefined,
    inject: (raw) => onMessage!(raw),
  };
}

describe('fuzz: JSON-RPC connection receive path', () => {
  it('answers every malformed message with -32600 and never throws or closes (5,000 inputs)', async () => {
    const transport = memoryTransport();
    const rpc = new JsonRpcConnection(transport, { maxMessageBytes: 4096 });
    rpc.setRequestHandler(() => ({ ok: true }));
    rpc.setNotificationHandler(() => undefined);
    const inputs = fc.sample(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 100 }),
        fc.constantFrom(...validMessages).chain((m) => fc.array(textMutationArb, { minLength: 1, maxLength: 3 }).map((ms) => mutateText(m, ms))),
        fc.string({ minLength: 4097, maxLength: 4200 }),
      ),
      { numRuns: 5_000, seed: 6 },
    );
    for (const raw of inputs) {
      const before = transport.sent.length;
      expect(() => transport.inject(raw)).not.toThrow();
      const parsed = parseMessage(raw);
      if (raw.length > 4096 || parsed.kind === 'invalid') {
        const answer = JSON.parse(transport.sent[before]!) as { error: { code: number } };
        expect(answer.error.code).toBe(-32600);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(rpc.closed).toBe(false);
    // The burst paused reading at the bound on unsent error answers; once they went out it resumed.
    expect(transport.paused).toBe(0);
    // Every answer the connection wrote is itself a well-formed message.
    for (const out of transport.sent) expect(parseMessage(out).kind).not.toBe('invalid');
  });
});
