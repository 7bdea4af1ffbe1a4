/**
 * The hybrid IK handshake between our own initiator and responder with random keys: round trips,
 * and every failure path — a flipped bit in each field of both handshake messages, wrong sizes, a
 * wrong pinned responder key, a different prologue, low-order keys, calls out of order — each a
 * HybridNoiseError with a fixed reason, never a crash and never a completed handshake.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HybridIkInitiator, HybridIkResponder } from '../../../../src/noise-hybrid/hybrid-ik-handshake.js';
import { generateHybridKeyPair, sameHybridPublicKey, type HybridKeyPair } from '../../../../src/noise-hybrid/hybrid-keys.js';
import { HybridNoiseError, type HybridNoiseFailure } from '../../../../src/noise-hybrid/hybrid-noise-error.js';
import { hybridPrologue } from '../../../../src/noise-hybrid/prologue.js';
import { MAX_AUTHORIZATION_PAYLOAD_BYTES, MESSAGE1_FIXED_BYTES, MESSAGE2_BYTES } from '../../../../src/noise-hybrid/suite.js';

const harness = generateHybridKeyPair();
const executor = generateHybridKeyPair();
const context = { environmentId: 'env-1', executorRegistrationId: 'registration-1', streamId: '6f1c1a0e-1d7b-4a53-9a55-2f4f3c1d0b9e' };
const prologue = hybridPrologue(context);
const authorization = Buffer.from('hka_test-authorization');

function pair(options: { responderKey?: HybridKeyPair; pinned?: HybridKeyPair; responderPrologue?: Uint8Array } = {}) {
  const initiator = new HybridIkInitiator({
    staticKeyPair: harness,
    responderStaticKey: (options.pinned ?? executor).publicKey,
    prologue,
  });
  const responder = new HybridIkResponder({ staticKeyPair: options.responderKey ?? executor, prologue: options.responderPrologue ?? prologue });
  return { initiator, responder };
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

function flipBit(message: Uint8Array, bit: number): Buffer {
  const copy = Buffer.from(message);
  copy[bit >> 3]! ^= 1 << (bit & 7);
  return copy;
}

// One byte inside each field of the two messages (see the layout table in hybrid-ik-handshake.ts).
const MESSAGE1_FIELDS = { 'skem ciphertext': 500, 'e.x25519': 1100, 'e.mlkem': 1500, 's.x25519 (encrypted)': 2310, 's.x25519 tag': 2340, 's.mlkem (encrypted)': 3000, 's.mlkem tag': 3540, payload: 3555 };
const MESSAGE2_FIELDS = { 'ekem ciphertext': 10, 'skem ciphertext (encrypted)': 1500, 'skem tag': 2180, 'e.x25519': 2200, 'e.mlkem': 3000, 'payload tag': 3410 };

describe('hybrid IK round trips', () => {
  it('completes with random keys: the responder learns the initiator key and payload, both transports agree both ways', () => {
    const { initiator, responder } = pair();
    const message1 = initiator.writeMessage1(authorization);
    expect(message1.length).toBe(MESSAGE1_FIXED_BYTES + authorization.length);
    const { initiatorStaticKey, payload } = responder.readMessage1(message1);
    expect(sameHybridPublicKey(initiatorStaticKey, harness.publicKey)).toBe(true);
    expect(payload.equals(authorization)).toBe(true);
    const { message: message2, transport: executorSide } = responder.writeMessage2();
    expect(message2.length).toBe(MESSAGE2_BYTES);
    const harnessSide = initiator.readMessage2(message2);
    expect(harnessSide.handshakeHash.equals(executorSide.handshakeHash)).toBe(true);
    for (let i = 0; i < 5; i++) {
      const up = Buffer.from(`request ${i}`);
      expect(executorSide.decrypt(harnessSide.encrypt(up)).equals(up)).toBe(true);
      const down = Buffer.alloc(1000 * i, i);
      expect(harnessSide.decrypt(executorSide.encrypt(down)).equals(down)).toBe(true);
    }
  });

  it('two handshakes with the same keys share no transport keys or hashes (fresh ephemerals)', () => {
    const run = () => {
      const { initiator, responder } = pair();
      responder.readMessage1(initiator.writeMessage1(authorization));
      const { message, transport } = responder.writeMessage2();
      initiator.readMessage2(message);
      return transport;
    };
    const a = run();
    const b = run();
    expect(a.handshakeHash.equals(b.handshakeHash)).toBe(false);
    expect(a.encrypt(Buffer.from('same')).equals(b.encrypt(Buffer.from('same')))).toBe(false);
  });

  it('carries an empty payload and the largest payload (4096 bytes), and refuses one byte more on both sides', () => {
    for (const size of [0, MAX_AUTHORIZATION_PAYLOAD_BYTES]) {
      const { initiator, responder } = pair();
      const payload = Buffer.alloc(size, 0x61);
      expect(responder.readMessage1(initiator.writeMessage1(payload)).payload.equals(payload)).toBe(true);
    }
    expect(failure(() => pair().initiator.writeMessage1(Buffer.alloc(MAX_AUTHORIZATION_PAYLOAD_BYTES + 1)))).toBe('payload-too-large');
    const tooLong = Buffer.alloc(MESSAGE1_FIXED_BYTES + MAX_AUTHORIZATION_PAYLOAD_BYTES + 1);
    expect(failure(() => pair().responder.readMessage1(tooLong))).toBe('bad-length');
  });
});

describe('hybrid IK failures', () => {
  for (const [field, offset] of Object.entries(MESSAGE1_FIELDS)) {
    it(`a flipped bit in message 1's ${field} fails the responder cleanly`, () => {
      const { initiator, responder } = pair();
      const tampered = flipBit(initiator.writeMessage1(authorization), offset * 8 + 3);
      expect(['decrypt-failed', 'bad-key']).toContain(failure(() => responder.readMessage1(tampered)));
      expect(failure(() => responder.writeMessage2())).toBe('wrong-state');
    });
  }

  for (const [field, offset] of Object.entries(MESSAGE2_FIELDS)) {
    it(`a flipped bit in message 2's ${field} fails the initiator cleanly`, () => {
      const { initiator, responder } = pair();
      responder.readMessage1(initiator.writeMessage1(authorization));
      const tampered = flipBit(responder.writeMessage2().message, offset * 8 + 5);
      expect(['decrypt-failed', 'bad-key']).toContain(failure(() => initiator.readMessage2(tampered)));
      expect(failure(() => initiator.readMessage2(tampered))).toBe('wrong-state');
    });
  }

  it('any flipped bit anywhere in either message fails the handshake (property)', () => {
    fc.assert(
      fc.property(fc.boolean(), fc.nat(), (inMessage1, position) => {
        const { initiator, responder } = pair();
        const message1 = initiator.writeMessage1(authorization);
        if (inMessage1) {
          const reason = failure(() => responder.readMessage1(flipBit(message1, position % (message1.length * 8))));
          expect(['decrypt-failed', 'bad-key']).toContain(reason);
          return;
        }
        responder.readMessage1(message1);
        const message2 = responder.writeMessage2().message;
        const reason = failure(() => initiator.readMessage2(flipBit(message2, position % (message2.length * 8))));
        expect(['decrypt-failed', 'bad-key']).toContain(reason);
      }),
      { numRuns: 40 },
    );
  });

  it('truncated, extended and empty messages are refused as bad-length', () => {
    const { initiator, responder } = pair();
    const message1 = initiator.writeMessage1(authorization);
    expect(failure(() => pair().responder.readMessage1(message1.subarray(0, MESSAGE1_FIXED_BYTES - 1)))).toBe('bad-length');
    expect(failure(() => pair().responder.readMessage1(new Uint8Array(0)))).toBe('bad-length');
    responder.readMessage1(message1);
    const message2 = responder.writeMessage2().message;
    const again = () => {
      const fresh = pair();
      fresh.responder.readMessage1(fresh.initiator.writeMessage1(authorization));
      return fresh.initiator;
    };
    expect(failure(() => again().readMessage2(message2.subarray(0, MESSAGE2_BYTES - 1)))).toBe('bad-length');
    expect(failure(() => again().readMessage2(Buffer.concat([message2, Buffer.from([0])])))).toBe('bad-length');
  });

  it('an initiator that pinned another responder key fails at the responder (its KEM secret and DH differ)', () => {
    const impostor = generateHybridKeyPair();
    const { initiator, responder } = pair({ pinned: impostor });
    expect(failure(() => responder.readMessage1(initiator.writeMessage1(authorization)))).toBe('decrypt-failed');
  });

  it('a responder with another static key cannot answer an initiator pinned to the real one', () => {
    const impostor = generateHybridKeyPair();
    const { initiator, responder } = pair({ responderKey: impostor });
    expect(failure(() => responder.readMessage1(initiator.writeMessage1(authorization)))).toBe('decrypt-failed');
  });

  it('a message 2 from a handshake with another initiator is refused (no splicing)', () => {
    const a = pair();
    const b = pair();
    a.initiator.writeMessage1(authorization);
    b.responder.readMessage1(b.initiator.writeMessage1(authorization));
    expect(failure(() => a.initiator.readMessage2(b.responder.writeMessage2().message))).toBe('decrypt-failed');
  });

  it('a prologue for another stream fails the handshake', () => {
    const other = hybridPrologue({ ...context, streamId: 'another-stream' });
    const { initiator, responder } = pair({ responderPrologue: other });
    expect(failure(() => responder.readMessage1(initiator.writeMessage1(authorization)))).toBe('decrypt-failed');
  });

  it('a low-order (all-zero) ephemeral X25519 key in message 1 is refused as bad-key', () => {
    const { initiator, responder } = pair();
    const message1 = initiator.writeMessage1(authorization);
    message1.fill(0, 1088, 1120);
    expect(failure(() => responder.readMessage1(message1))).toBe('bad-key');
  });

  it('refuses calls out of order', () => {
    const { initiator, responder } = pair();
    expect(failure(() => initiator.readMessage2(Buffer.alloc(MESSAGE2_BYTES)))).toBe('wrong-state');
    expect(failure(() => responder.writeMessage2())).toBe('wrong-state');
    const fresh = pair();
    const message1 = fresh.initiator.writeMessage1(authorization);
    expect(failure(() => fresh.initiator.writeMessage1(authorization))).toBe('wrong-state');
    fresh.responder.readMessage1(message1);
    expect(failure(() => fresh.responder.readMessage1(message1))).toBe('wrong-state');
  });
});
