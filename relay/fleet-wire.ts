/**
 * What relay instances of one fleet say to each other through NATS: subjects, the control
 * messages, and the registry's keys and values. Defined here and nowhere else.
 *
 * Subjects (`T` is an environment token, `environmentToken(id)`):
 * - `execrelay.env.T.up`     client frames towards the executor of the environment. Subscribed by
 *                            the instance holding that executor's socket (while it holds it or
 *                            waits for it within its reconnect grace). Each message is one relay
 *                            frame, unchanged; its NATS reply subject names the client socket
 *                            (`execrelay.client.INSTANCE.BOOT.CRED.CONN`) frames go back to, and
 *                            the credential it connected with (CRED, `RelayCredential.id`: the
 *                            holder counts the token's share and checks stream ownership with it).
 * - `execrelay.env.T.ctl`    control messages for the holder (JSON, `FleetControlMessage`).
 * - `execrelay.env.T.orphan` executor frames the holder has no route for (its executor just moved
 *                            here): every instance with a client socket for the environment listens,
 *                            and the one holding the stream's client answers with a `claim`.
 * - `execrelay.client.INSTANCE.BOOT.CRED.CONN` executor frames towards one client socket.
 * - `execrelay.instance.INSTANCE.BOOT.hka` requests (JSON, `AuthorizationUseRequest`) to the relay
 *                            process that minted a codex harness key authorization: "this nonce is
 *                            being used", answered once `fresh` and `replayed` after
 *                            (`AuthorizationUseAnswer`).
 *
 * The same subjects carry both kinds of executor: an environment held by a codex executor
 * (`EnvironmentEntry.codex`) has codex relay frames (`RelayMessageFrame`) on `.up` and on its
 * harnesses' client subjects, an execrelay agent's has execrelay relay frames. Frames cross NATS as
 * the endpoints sent them: the relay still reads only what routing needs, and loss or reordering
 * between instances is repaired by the endpoints (execrelay's reliable stream; a codex stream that
 * loses a frame fails and the harness opens a new one).
 */
import { z } from 'zod';
import { isStreamId } from '../src/relay-frame/relay-frame.js';

export const FLEET_SUBJECT_ROOT = 'execrelay';

/** Instance ids (and boot tokens): a NATS subject token and a KV key part. */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function validateInstanceId(id: string): string | null {
  return INSTANCE_ID_PATTERN.test(id) ? null : 'instance id must be 1-64 characters of letters, digits, "_" or "-"';
}

/**
 * An environment id as one subject token / KV key part: base64url, because environment ids may
 * contain `.`, the NATS token separator.
 */
export function environmentToken(environmentId: string): string {
  return Buffer.from(environmentId, 'utf8').toString('base64url');
}

export const FleetSubject = {
  toExecutor: (token: string) => `${FLEET_SUBJECT_ROOT}.env.${token}.up`,
  control: (token: string) => `${FLEET_SUBJECT_ROOT}.env.${token}.ctl`,
  orphans: (token: string) => `${FLEET_SUBJECT_ROOT}.env.${token}.orphan`,
  /** The prefix of one relay process's client sockets (`.CRED.CONN` follows). */
  clientsOf: (instanceId: string, boot: string) => `${FLEET_SUBJECT_ROOT}.client.${instanceId}.${boot}`,
  /** One client socket: its instance's prefix, its credential id and its connection token. */
  client: (instanceId: string, boot: string, credentialId: string, connection: string) =>
    `${FLEET_SUBJECT_ROOT}.client.${instanceId}.${boot}.${credentialId}.${connection}`,
  /** The relay process that minted codex harness key authorizations: their uses are asked here. */
  authorizationsOf: (instanceId: string, boot: string) => `${FLEET_SUBJECT_ROOT}.instance.${instanceId}.${boot}.hka`,
} as const;

/** `execrelay.client.INSTANCE.BOOT.CRED.CONN` → its parts, or null for anything else. */
export function parseClientSubject(subject: string): { instanceId: string; boot: string; credentialId: string; connection: string } | null {
  const parts = subject.split('.');
  if (parts.length !== 6 || parts[0] !== FLEET_SUBJECT_ROOT || parts[1] !== 'client') return null;
  const [, , instanceId, boot, credentialId, connection] = parts as [string, string, string, string, string, string];
  if (![instanceId, boot, credentialId, connection].every((part) => INSTANCE_ID_PATTERN.test(part))) return null;
  return { instanceId, boot, credentialId, connection };
}

const clientSubject = z.string().max(256).refine((s) => parseClientSubject(s) !== null, 'not a client subject');

/** Control messages on `execrelay.env.T.ctl`. */
export const FleetControlMessage = z.discriminatedUnion('type', [
  /**
   * An executor registered the environment on `instance` at `registeredAt` (see
   * `isNewerRegistration`). An older holder releases the environment (closes its link, forgets its
   * routes); a newer one answers with its own `takeover`.
   */
  z.object({ type: z.literal('takeover'), instance: z.string().regex(INSTANCE_ID_PATTERN), registeredAt: z.number().int().positive() }),
  /** The client socket behind `client` closed: its streams wait for the client's grace. */
  z.object({ type: z.literal('detach'), client: clientSubject }),
  /**
   * A request (NATS reply subject set): is an instance holding this environment? The holder
   * answers with an empty message; NATS itself answers "no responders" at once when nobody
   * subscribes, so a holder that died is noticed before its registry entry expires.
   */
  z.object({ type: z.literal('probe') }),
  /** The client socket behind `client` carries `streamId` (answer to an orphan frame). */
  z.object({ type: z.literal('claim'), client: clientSubject, streamId: z.string().refine(isStreamId, 'not a stream id') }),
]);
export type FleetControlMessage = z.infer<typeof FleetControlMessage>;

export function parseFleetControlMessage(data: Uint8Array): FleetControlMessage | null {
  try {
    const parsed = FleetControlMessage.safeParse(JSON.parse(Buffer.from(data).toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

export function encodeFleetControlMessage(message: FleetControlMessage): Uint8Array {
  return Buffer.from(JSON.stringify(message), 'utf8');
}

/** The registry: one NATS KV bucket (memory storage, every entry expires unless refreshed). */
export const REGISTRY_BUCKET = 'execrelay-registry';
export const RegistryKey = {
  environment: (token: string) => `env.${token}`,
  instance: (instanceId: string) => `instance.${instanceId}`,
} as const;

/**
 * A codex executor's registration (`codex exec-server --remote`), in its environment's entry: what
 * `connect` and `validate` on any instance need — the registration id, the credential (token id)
 * it registered with, and its hybrid public key as the registry's key object (parsed strictly,
 * `parseRegistryPublicKey`, where it is used).
 */
export const CodexRegistrationEntry = z.object({
  registrationId: z.string().min(1).max(128),
  credentialId: z.string().regex(INSTANCE_ID_PATTERN),
  executorKey: z.object({ suite: z.string().max(128), x25519_public_key: z.string().max(128), mlkem768_public_key: z.string().max(4096) }),
});
export type CodexRegistrationEntry = z.infer<typeof CodexRegistrationEntry>;

/**
 * `env.T`: which instance holds the environment's executor, since when; for a codex executor, its
 * registration (absent: an execrelay agent). One entry per environment: one namespace for both kinds.
 */
export const EnvironmentEntry = z.object({
  instance: z.string().regex(INSTANCE_ID_PATTERN),
  boot: z.string().regex(INSTANCE_ID_PATTERN),
  registeredAt: z.number().int().nonnegative(),
  codex: CodexRegistrationEntry.optional(),
});
export type EnvironmentEntry = z.infer<typeof EnvironmentEntry>;

/** A request on `execrelay.instance.I.B.hka`: a codex harness key authorization minted there is being used. */
export const AuthorizationUseRequest = z.object({
  nonce: z.string().regex(/^[0-9a-f]{32}$/),
  expiresAt: z.number().int().positive(),
});
export type AuthorizationUseRequest = z.infer<typeof AuthorizationUseRequest>;

/** The minting process's answer: the first use of a nonce is `fresh`, every later one `replayed`. */
export const AuthorizationUseAnswer = z.object({ use: z.enum(['fresh', 'replayed']) });
export type AuthorizationUseAnswer = z.infer<typeof AuthorizationUseAnswer>;

/** JSON text of a fleet message, parsed with `schema`; null when it is not one. */
export function parseFleetJson<T>(schema: { safeParse(value: unknown): { success: true; data: T } | { success: false } }, data: Uint8Array): T | null {
  try {
    const parsed = schema.safeParse(JSON.parse(Buffer.from(data).toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}

/** `instance.ID`: the instance is alive; `boot` tells its current process from an earlier one. */
export const InstanceEntry = z.object({ boot: z.string().regex(INSTANCE_ID_PATTERN), startedAt: z.number().int().nonnegative() });
export type InstanceEntry = z.infer<typeof InstanceEntry>;

/**
 * Newest registration wins: the later `registeredAt`, then the greater instance id. A
 * registration's `registeredAt` is one past the entry it replaced when that is ahead of the local
 * clock (a Lamport timestamp), so a registration is always newer than every entry its instance
 * saw, whatever the clocks of the instances say.
 */
export function isNewerRegistration(a: { registeredAt: number; instance: string }, b: { registeredAt: number; instance: string }): boolean {
  return a.registeredAt !== b.registeredAt ? a.registeredAt > b.registeredAt : a.instance > b.instance;
}
