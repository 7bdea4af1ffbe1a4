/**
 * The codex hybrid IK test vectors (test/fixtures/codex-vectors/, copied verbatim from the protocol
 * notes): `live-0.169.0.json`, a real handshake with codex exec-server 0.169.0 as responder, and
 * `deterministic.json`, both sides with every key and KEM randomness fixed.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const directory = fileURLToPath(new URL('../fixtures/codex-vectors/', import.meta.url));

export interface LiveVector {
  noise_protocol_name: string;
  suite_tag: string;
  harness_secrets: { s_x25519: string; s_mlkem_seed: string; e_x25519: string; e_mlkem_seed: string; skem_m: string };
  environment_id: string;
  executor_registration_id: string;
  stream_id: string;
  executor_public_key: { suite: string; x25519_public_key: string; mlkem768_public_key: string };
  harness_key_authorization: string;
  prologue_hex: string;
  msg1_hex: string;
  msg2_hex: string;
  handshake_hash_hex: string;
  records: Array<{ dir: 'harness->executor' | 'executor->harness'; seq: number; ciphertext_hex: string; plaintext_hex: string }>;
}

export interface DeterministicVector {
  protocol_name: string;
  harness_static: { x25519_priv: string; mlkem_seed: string; x25519_pub: string };
  executor_static: { x25519_priv: string; mlkem_seed: string; x25519_pub: string };
  initiator_fixed: { skem_m: string; e_x25519_priv: string; e_mlkem_seed: string };
  responder_fixed: { e_x25519_priv: string; e_mlkem_seed: string; ekem_m: string; skem_m: string };
  environment_id: string;
  executor_registration_id: string;
  stream_id: string;
  prologue_hex: string;
  payload1_utf8: string;
  msg1_len: number;
  msg1_sha256: string;
  msg2_len: number;
  msg2_sha256: string;
  handshake_hash: string;
  first_record_plaintext_hex: string;
  first_record_ciphertext_hex: string;
  initiator_symmetric_trace: Array<{ op: string; len?: number; h?: string; ck?: string; k?: string }>;
}

function load<T>(name: string): T {
  return JSON.parse(readFileSync(`${directory}${name}`, 'utf8')) as T;
}

export const liveVector = (): LiveVector => load<LiveVector>('live-0.169.0.json');
export const deterministicVector = (): DeterministicVector => load<DeterministicVector>('deterministic.json');

export const hex = (text: string): Buffer => Buffer.from(text, 'hex');
