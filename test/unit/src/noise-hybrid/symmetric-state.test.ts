import { describe, expect, it } from 'vitest';
import { SymmetricState } from '../../../../src/noise-hybrid/symmetric-state.js';

describe('SymmetricState', () => {
  it('pads a protocol name of at most 32 bytes instead of hashing it (Noise InitializeSymmetric)', () => {
    const name = 'Noise_NN_25519_AESGCM_SHA256';
    const steps: unknown[] = [];
    const state = new SymmetricState(name, (step) => steps.push(step));
    expect(state.handshakeHash.equals(Buffer.concat([Buffer.from(name), Buffer.alloc(32 - name.length)]))).toBe(true);
    expect(steps).toHaveLength(1);
  });

  it('copies in clear and hashes while no key exists', () => {
    const a = new SymmetricState('Noise_test_protocol_name_longer_than_32_bytes');
    const b = new SymmetricState('Noise_test_protocol_name_longer_than_32_bytes');
    expect(a.encryptAndHash(Buffer.from('clear')).toString()).toBe('clear');
    expect(b.decryptAndHash(Buffer.from('clear')).toString()).toBe('clear');
    expect(a.handshakeHash.equals(b.handshakeHash)).toBe(true);
  });
});
