/**
 * Byte-for-byte conformance of the hybrid IK handshake with codex exec-server 0.169.0: the live
 * transcript (the binary as responder) replayed by our initiator, and the deterministic vectors
 * replayed by both our initiator and our responder, with the initiator's symmetric-state trace.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HybridIkInitiator, HybridIkResponder } from '../../../../src/noise-hybrid/hybrid-ik-handshake.js';
import { hybridKeyPairFromSecrets } from '../../../../src/noise-hybrid/hybrid-keys.js';
import { hybridPrologue } from '../../../../src/noise-hybrid/prologue.js';
import type { SymmetricStep } from '../../../../src/noise-hybrid/symmetric-state.js';
import { HYBRID_NOISE_PROTOCOL_NAME, HYBRID_SUITE_TAG } from '../../../../src/noise-hybrid/suite.js';
import { deterministicVector, hex, liveVector } from '../../../support/codex-vectors.js';

const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

describe('hybrid IK against the live transcript of codex exec-server 0.169.0 (initiator replay)', () => {
  const v = liveVector();
  const harness = hybridKeyPairFromSecrets({ x25519Private: hex(v.harness_secrets.s_x25519), mlkem768Seed: hex(v.harness_secrets.s_mlkem_seed) });
  const executorKey = {
    x25519: Buffer.from(v.executor_public_key.x25519_public_key, 'base64'),
    mlkem768: Buffer.from(v.executor_public_key.mlkem768_public_key, 'base64'),
  };
  const prologue = hybridPrologue({ environmentId: v.environment_id, executorRegistrationId: v.executor_registration_id, streamId: v.stream_id });
  const newInitiator = () =>
    new HybridIkInitiator({
      staticKeyPair: harness,
      responderStaticKey: executorKey,
      prologue,
      fixed: {
        ephemeral: { x25519Private: hex(v.harness_secrets.e_x25519), mlkem768Seed: hex(v.harness_secrets.e_mlkem_seed) },
        skemRandomness: hex(v.harness_secrets.skem_m),
      },
    });

  it('names the protocol and the suite as the binary does', () => {
    expect(HYBRID_NOISE_PROTOCOL_NAME).toBe(v.noise_protocol_name);
    expect(HYBRID_SUITE_TAG).toBe(v.suite_tag);
    expect(v.executor_public_key.suite).toBe(HYBRID_SUITE_TAG);
  });

  it('builds the prologue byte for byte (8-byte lengths)', () => {
    expect(prologue.toString('hex')).toBe(v.prologue_hex);
  });

  it('writes message 1 byte for byte, reads the binary\'s message 2, and matches the handshake hash', () => {
    const initiator = newInitiator();
    const message1 = initiator.writeMessage1(Buffer.from(v.harness_key_authorization, 'utf8'));
    expect(message1.length).toBe(3604);
    expect(message1.toString('hex')).toBe(v.msg1_hex);
    const message2 = hex(v.msg2_hex);
    expect(message2.length).toBe(3424);
    const transport = initiator.readMessage2(message2);
    expect(transport.handshakeHash.toString('hex')).toBe(v.handshake_hash_hex);
  });

  it('encrypts the harness records and decrypts the binary\'s records in order, byte for byte', () => {
    const initiator = newInitiator();
    initiator.writeMessage1(Buffer.from(v.harness_key_authorization, 'utf8'));
    const transport = initiator.readMessage2(hex(v.msg2_hex));
    const sent = v.records.filter((r) => r.dir === 'harness->executor').sort((a, b) => a.seq - b.seq);
    const received = v.records.filter((r) => r.dir === 'executor->harness').sort((a, b) => a.seq - b.seq);
    expect(sent.length).toBe(3);
    expect(received.length).toBe(3);
    for (const record of sent) expect(transport.encrypt(hex(record.plaintext_hex)).toString('hex')).toBe(record.ciphertext_hex);
    for (const record of received) expect(transport.decrypt(hex(record.ciphertext_hex)).toString('hex')).toBe(record.plaintext_hex);
    expect(transport.recordsSent).toBe(3n);
    expect(transport.recordsReceived).toBe(3n);
  });

  it('fails cleanly when the pinned executor key is not the one the binary answered with', () => {
    const other = { x25519: Buffer.from(executorKey.x25519), mlkem768: executorKey.mlkem768 };
    other.x25519[0]! ^= 1;
    const initiator = new HybridIkInitiator({ staticKeyPair: harness, responderStaticKey: other, prologue });
    initiator.writeMessage1(Buffer.from(v.harness_key_authorization, 'utf8'));
    expect(() => initiator.readMessage2(hex(v.msg2_hex))).toThrow(expect.objectContaining({ name: 'HybridNoiseError', reason: 'decrypt-failed' }));
  });
});

describe('hybrid IK against the deterministic vectors (both sides)', () => {
  const v = deterministicVector();
  const harness = hybridKeyPairFromSecrets({ x25519Private: hex(v.harness_static.x25519_priv), mlkem768Seed: hex(v.harness_static.mlkem_seed) });
  const executor = hybridKeyPairFromSecrets({ x25519Private: hex(v.executor_static.x25519_priv), mlkem768Seed: hex(v.executor_static.mlkem_seed) });
  const prologue = hybridPrologue({ environmentId: v.environment_id, executorRegistrationId: v.executor_registration_id, streamId: v.stream_id });
  const initiatorFixed = {
    ephemeral: { x25519Private: hex(v.initiator_fixed.e_x25519_priv), mlkem768Seed: hex(v.initiator_fixed.e_mlkem_seed) },
    skemRandomness: hex(v.initiator_fixed.skem_m),
  };
  const responderFixed = {
    ephemeral: { x25519Private: hex(v.responder_fixed.e_x25519_priv), mlkem768Seed: hex(v.responder_fixed.e_mlkem_seed) },
    ekemRandomness: hex(v.responder_fixed.ekem_m),
    skemRandomness: hex(v.responder_fixed.skem_m),
  };

  it('derives the static X25519 public keys and the prologue', () => {
    expect(Buffer.from(harness.publicKey.x25519).toString('hex')).toBe(v.harness_static.x25519_pub);
    expect(Buffer.from(executor.publicKey.x25519).toString('hex')).toBe(v.executor_static.x25519_pub);
    expect(prologue.toString('hex')).toBe(v.prologue_hex);
    expect(v.protocol_name).toBe(HYBRID_NOISE_PROTOCOL_NAME);
  });

  it('runs both sides to the vector messages, hash and first record, with the initiator trace step for step', () => {
    const trace: SymmetricStep[] = [];
    const initiator = new HybridIkInitiator({
      staticKeyPair: harness,
      responderStaticKey: executor.publicKey,
      prologue,
      fixed: initiatorFixed,
      observe: (step) => trace.push(step),
    });
    const responder = new HybridIkResponder({ staticKeyPair: executor, prologue, fixed: responderFixed });

    const message1 = initiator.writeMessage1(Buffer.from(v.payload1_utf8, 'utf8'));
    expect(message1.length).toBe(v.msg1_len);
    expect(sha256Hex(message1)).toBe(v.msg1_sha256);

    const { initiatorStaticKey, payload } = responder.readMessage1(message1);
    expect(payload.toString('utf8')).toBe(v.payload1_utf8);
    expect(Buffer.from(initiatorStaticKey.x25519).equals(harness.publicKey.x25519)).toBe(true);
    expect(Buffer.from(initiatorStaticKey.mlkem768).equals(harness.publicKey.mlkem768)).toBe(true);

    const { message: message2, transport: responderTransport } = responder.writeMessage2();
    expect(message2.length).toBe(v.msg2_len);
    expect(sha256Hex(message2)).toBe(v.msg2_sha256);

    const initiatorTransport = initiator.readMessage2(message2);
    expect(initiatorTransport.handshakeHash.toString('hex')).toBe(v.handshake_hash);
    expect(responderTransport.handshakeHash.toString('hex')).toBe(v.handshake_hash);

    const record = initiatorTransport.encrypt(hex(v.first_record_plaintext_hex));
    expect(record.toString('hex')).toBe(v.first_record_ciphertext_hex);
    expect(responderTransport.decrypt(record).toString('hex')).toBe(v.first_record_plaintext_hex);

    const rendered = trace.map((step) =>
      step.op === 'init'
        ? { op: step.op, h: Buffer.from(step.h).toString('hex') }
        : step.op === 'MixHash'
          ? { op: step.op, len: step.len, h: Buffer.from(step.h).toString('hex') }
          : { op: step.op, ck: Buffer.from(step.ck).toString('hex'), k: Buffer.from(step.k).toString('hex') },
    );
    expect(rendered).toEqual(v.initiator_symmetric_trace);
  });

  it('the responder alone reproduces message 2 from the vector message 1', () => {
    const initiator = new HybridIkInitiator({ staticKeyPair: harness, responderStaticKey: executor.publicKey, prologue, fixed: initiatorFixed });
    const message1 = initiator.writeMessage1(Buffer.from(v.payload1_utf8, 'utf8'));
    const responder = new HybridIkResponder({ staticKeyPair: executor, prologue, fixed: responderFixed });
    responder.readMessage1(message1);
    expect(sha256Hex(responder.writeMessage2().message)).toBe(v.msg2_sha256);
  });
});
