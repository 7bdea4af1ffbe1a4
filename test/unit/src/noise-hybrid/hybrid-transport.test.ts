/**
 * The transport after a hybrid IK handshake: records in order, and every way a record can go
 * wrong — a flipped bit, reordering, replay, a record reflected back, wrong sizes — fails cleanly and
 * leaves the transport refusing further use.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HybridIkInitiator, HybridIkResponder } from '../../../../src/noise-hybrid/hybrid-ik-handshake.js';
import { generateHybridKeyPair } from '../../../../src/noise-hybrid/hybrid-keys.js';
import { HybridNoiseError, type HybridNoiseFailure } from '../../../../src/noise-hybrid/hybrid-noise-error.js';
import type { HybridTransport } from '../../../../src/noise-hybrid/hybrid-transport.js';
import { hybridPrologue } from '../../../../src/noise-hybrid/prologue.js';
import { MAX_NOISE_MESSAGE_BYTES, MAX_RECORD_PLAINTEXT_BYTES } from '../../../../src/noise-hybrid/suite.js';

const harness = generateHybridKeyPair();
const executor = generateHybridKeyPair();
const prologue = hybridPrologue({ environmentId: 'env', executorRegistrationId: 'reg', streamId: 'stream' });

function connect(): { harnessSide: HybridTransport; executorSide: HybridTransport } {
  const initiator = new HybridIkInitiator({ staticKeyPair: harness, responderStaticKey: executor.publicKey, prologue });
  const responder = new HybridIkResponder({ staticKeyPair: executor, prologue });
  responder.readMessage1(initiator.writeMessage1(Buffer.from('auth')));
  const { message, transport } = responder.writeMessage2();
  return { harnessSide: initiator.readMessage2(message), executorSide: transport };
}

function failure(operation: () => unknown): HybridNoiseFailure {
  try {
    operation();
  } catch (error) {
    expect(error).toBeInstanceOf(HybridNoiseError);
    return (error as HybridNoiseError).reason;
  }
  throw new Error('expected a HybridNoiseError, but the operation succeeded');
}

describe('hybrid transport', () => {
  it('carries the largest record (65,519 plaintext bytes = one 65,535-byte Noise message) and refuses one byte more', () => {
    const { harnessSide, executorSide } = connect();
    const largest = Buffer.alloc(MAX_RECORD_PLAINTEXT_BYTES, 7);
    const record = harnessSide.encrypt(largest);
    expect(record.length).toBe(MAX_NOISE_MESSAGE_BYTES);
    expect(executorSide.decrypt(record).equals(largest)).toBe(true);
    expect(failure(() => harnessSide.encrypt(Buffer.alloc(MAX_RECORD_PLAINTEXT_BYTES + 1)))).toBe('payload-too-large');
    // A refused plaintext is the caller's mistake, not a broken channel: the next record still works.
    expect(executorSide.decrypt(harnessSide.encrypt(Buffer.from('after'))).toString()).toBe('after');
  });

  it('a flipped bit anywhere in a record fails it, and the transport refuses further records', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(), (plaintext, position) => {
        const { harnessSide, executorSide } = connect();
        const record = harnessSide.encrypt(plaintext);
        const bit = position % (record.length * 8);
        record[bit >> 3]! ^= 1 << (bit & 7);
        expect(failure(() => executorSide.decrypt(record))).toBe('decrypt-failed');
        expect(failure(() => executorSide.decrypt(harnessSide.encrypt(Buffer.from('next'))))).toBe('wrong-state');
      }),
      { numRuns: 25 },
    );
  });

  it('a record out of order fails (nonces are implicit: records must be opened in seq order)', () => {
    const { harnessSide, executorSide } = connect();
    harnessSide.encrypt(Buffer.from('first'));
    const second = harnessSide.encrypt(Buffer.from('second'));
    expect(failure(() => executorSide.decrypt(second))).toBe('decrypt-failed');
  });

  it('a replayed record fails', () => {
    const { harnessSide, executorSide } = connect();
    const record = harnessSide.encrypt(Buffer.from('once'));
    expect(executorSide.decrypt(record).toString()).toBe('once');
    expect(failure(() => executorSide.decrypt(record))).toBe('decrypt-failed');
  });

  it('a record reflected back to its sender fails (one key per direction)', () => {
    const { harnessSide } = connect();
    const record = harnessSide.encrypt(Buffer.from('mine'));
    expect(failure(() => harnessSide.decrypt(record))).toBe('decrypt-failed');
  });

  it('records shorter than a tag or longer than a Noise message are refused as bad-length', () => {
    expect(failure(() => connect().executorSide.decrypt(Buffer.alloc(15)))).toBe('bad-length');
    expect(failure(() => connect().executorSide.decrypt(Buffer.alloc(MAX_NOISE_MESSAGE_BYTES + 1)))).toBe('bad-length');
  });
});
