/**
 * The registry's JSON bodies as codex 0.169.0 sends and expects them (protocol notes §1, §3, §6).
 * Key objects are `src/noise-hybrid/registry-public-key.ts`'s; unknown members are ignored, as
 * codex ignores them.
 */
import { z } from 'zod';
import { MAX_AUTHORIZATION_PAYLOAD_BYTES } from '../noise-hybrid/suite.js';

/** Longest executor registration id we accept back (ours are `reg-` + a UUID). */
export const MAX_REGISTRATION_ID_CHARS = 256;

/** `POST …/register` from an executor. */
export const RegisterRequest = z.object({
  security_profile: z.string().max(64),
  executor_public_key: z.unknown(),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

/** The answer to `register` (every member required by codex). */
export const RegisterResponse = z.object({
  environment_id: z.string(),
  url: z.string().max(4096),
  security_profile: z.string(),
  executor_registration_id: z.string().max(MAX_REGISTRATION_ID_CHARS),
});
export type RegisterResponse = z.infer<typeof RegisterResponse>;

/** `POST …/connect` from a harness (client). */
export const ConnectRequest = z.object({ harness_public_key: z.unknown() });
export type ConnectRequest = z.infer<typeof ConnectRequest>;

/** The answer to `connect`. */
export const ConnectResponse = z.object({
  environment_id: z.string(),
  url: z.string().max(4096),
  security_profile: z.string(),
  executor_registration_id: z.string().max(MAX_REGISTRATION_ID_CHARS),
  executor_public_key: z.unknown(),
  harness_key_authorization: z.string().min(1).max(MAX_AUTHORIZATION_PAYLOAD_BYTES),
});
export type ConnectResponse = z.infer<typeof ConnectResponse>;

/** `POST …/validate` from an executor: is this harness key, proven in a handshake, authorized? */
export const ValidateRequest = z.object({
  executor_registration_id: z.string().max(MAX_REGISTRATION_ID_CHARS),
  harness_public_key: z.unknown(),
  harness_key_authorization: z.string().max(MAX_AUTHORIZATION_PAYLOAD_BYTES),
});
export type ValidateRequest = z.infer<typeof ValidateRequest>;

/** The answer to `validate`: only `{"valid":true}` completes a handshake. */
export const ValidateResponse = z.object({ valid: z.boolean() });
export type ValidateResponse = z.infer<typeof ValidateResponse>;

/** Every registry error body. */
export const RegistryErrorBody = z.object({ error: z.object({ code: z.string().max(128), message: z.string().max(1024) }) });
export type RegistryErrorBody = z.infer<typeof RegistryErrorBody>;
