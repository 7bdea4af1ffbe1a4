import { describe, expect, it } from 'vitest';
import {
  generateHybridKeyPair,
  hybridKeyPairFromSecrets,
  mlkem768Decapsulate,
  mlkem768Encapsulate,
  x25519,
} from '../../../../src/noise-hybrid/hybrid-keys.js';
import { HybridNoiseError } from '../../../../src/noise-hybrid/hybrid-noise-error.js';

describe('hybrid keys', () => {
  it('a key pair made from the same secrets is the same key pair; a generated one is new each time', () => {
    const a = generateHybridKeyPair();
    const b = hybridKeyPairFromSecrets(a.secrets);
    expect(Buffer.from(b.publicKey.x25519).equals(a.publicKey.x25519)).toBe(true);
    expect(Buffer.from(b.publicKey.mlkem768).equals(a.publicKey.mlkem768)).toBe(true);
    expect(Buffer.from(generateHybridKeyPair().publicKey.x25519).equals(a.publicKey.x25519)).toBe(false);
  });

  it('ML-KEM-768 and X25519 agree across two key pairs', () => {
    const a = generateHybridKeyPair();
    const b = generateHybridKeyPair();
    const { ciphertext, sharedSecret } = mlkem768Encapsulate(b.publicKey.mlkem768);
    expect(Buffer.from(mlkem768Decapsulate(ciphertext, b.mlkem768SecretKey)).equals(sharedSecret)).toBe(true);
    expect(x25519(a.x25519PrivateKey, b.publicKey.x25519).equals(x25519(b.x25519PrivateKey, a.publicKey.x25519))).toBe(true);
  });

  it('refuses to encapsulate to a key with a coefficient ≥ q (FIPS 203 modulus check), accepts q - 1', () => {
    const key = Buffer.from(generateHybridKeyPair().publicKey.mlkem768);
    // first coefficient = b0 | (b1 & 0x0f) << 8
    key[0] = 0x00;
    key[1] = (key[1]! & 0xf0) | 0x0d; // 3328 = q - 1
    expect(() => mlkem768Encapsulate(key)).not.toThrow();
    key[0] = 0x01; // 3329 = q
    expect(() => mlkem768Encapsulate(key)).toThrow(expect.objectContaining({ reason: 'bad-key' }));
    // the second coefficient of a triple = (b1 >> 4) | b2 << 4, in the last triple of t̂
    const last = Buffer.from(generateHybridKeyPair().publicKey.mlkem768);
    last[1151] = 0xff;
    last[1150] = last[1150]! | 0xf0;
    expect(() => mlkem768Encapsulate(last)).toThrow(HybridNoiseError);
    expect(() => mlkem768Encapsulate(Buffer.alloc(1184, 0xff))).toThrow(HybridNoiseError);
  });

  it('refuses wrong sizes and low-order X25519 keys with a HybridNoiseError', () => {
    const a = generateHybridKeyPair();
    expect(() => x25519(a.x25519PrivateKey, Buffer.alloc(32))).toThrow(expect.objectContaining({ reason: 'bad-key' }));
    expect(() => x25519(a.x25519PrivateKey, Buffer.alloc(31))).toThrow(expect.objectContaining({ reason: 'bad-length' }));
    expect(() => mlkem768Encapsulate(Buffer.alloc(1183))).toThrow(expect.objectContaining({ reason: 'bad-length' }));
    expect(() => mlkem768Decapsulate(Buffer.alloc(1087), a.mlkem768SecretKey)).toThrow(expect.objectContaining({ reason: 'bad-length' }));
    expect(() => hybridKeyPairFromSecrets({ x25519Private: Buffer.alloc(32, 1), mlkem768Seed: Buffer.alloc(32) })).toThrow(HybridNoiseError);
  });
});
