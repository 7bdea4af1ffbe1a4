import { createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CipherState } from '../../../../src/noise-hybrid/cipher-state.js';
import { HybridNoiseError } from '../../../../src/noise-hybrid/hybrid-noise-error.js';

const key = Buffer.alloc(32, 0x42);

describe('CipherState (AES-256-GCM)', () => {
  it('uses nonce = 4 zero bytes ‖ 64-bit counter big-endian and appends the 16-byte tag', () => {
    const cipher = new CipherState(key);
    cipher.encryptWithAd(Buffer.alloc(0), Buffer.from('first'));
    const sealed = cipher.encryptWithAd(Buffer.from('ad'), Buffer.from('second'));
    const nonce = Buffer.from('000000000000000000000001', 'hex');
    const decipher = createDecipheriv('aes-256-gcm', key, nonce);
    decipher.setAAD(Buffer.from('ad'));
    decipher.setAuthTag(sealed.subarray(-16));
    expect(Buffer.concat([decipher.update(sealed.subarray(0, -16)), decipher.final()]).toString()).toBe('second');
  });

  it('stops at its nonce limit on both sides', () => {
    const sender = new CipherState(key, 2n);
    const receiver = new CipherState(key, 2n);
    const records = [sender.encryptWithAd(Buffer.alloc(0), Buffer.from('a')), sender.encryptWithAd(Buffer.alloc(0), Buffer.from('b'))];
    expect(() => sender.encryptWithAd(Buffer.alloc(0), Buffer.from('c'))).toThrow(expect.objectContaining({ reason: 'nonce-exhausted' }));
    for (const record of records) receiver.decryptWithAd(Buffer.alloc(0), record);
    expect(() => receiver.decryptWithAd(Buffer.alloc(0), records[0]!)).toThrow(expect.objectContaining({ reason: 'nonce-exhausted' }));
  });

  it('does not advance on a failed decryption, and refuses a key of the wrong size', () => {
    const sender = new CipherState(key);
    const receiver = new CipherState(key);
    const record = sender.encryptWithAd(Buffer.alloc(0), Buffer.from('x'));
    expect(() => receiver.decryptWithAd(Buffer.from('other ad'), record)).toThrow(expect.objectContaining({ reason: 'decrypt-failed' }));
    expect(receiver.nonce).toBe(0n);
    expect(receiver.decryptWithAd(Buffer.alloc(0), record).toString()).toBe('x');
    expect(() => new CipherState(Buffer.alloc(16))).toThrow(HybridNoiseError);
  });
});
