import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  EnvironmentEntry,
  type CodexRegistrationEntry,
  InstanceEntry,
  REGISTRY_BUCKET,
  RegistryKey,
  environmentToken,
} from './fleet-wire.js';

/** The NATS server runs without JetStream, which the registry needs: a configuration error. */
export class NoJetStreamError extends Error {
  constructor() {
    super('NATS has no JetStream: the relay fleet keeps its registry in a KV bucket; start nats-server with -js (or "jetstream {}" in its config)');
    this.name = 'NoJetStreamError';
  }
}

/** The outcome of keeping an environment's registry entry. */
export type Announcement = { held: true; revision: number; recreated: boolean } | { held: false; holder: EnvironmentEntry };

/**
 * The fleet's registry of environment → instance, a NATS KV bucket (JetStream, memory storage).
 * The bucket's TTL is the liveness: every entry expires unless its instance refreshes it, so an
 * environment whose instance died disappears within one TTL, and a lookup answers at once.
 *
 * An executor registering writes its entry unconditionally (the newest registration is the one
 * happening now); refreshes are compare-and-set on the revision last written, so an instance that
 * missed a takeover never overwrites the newer holder blindly: its refresh fails, it looks, and the
 * older registration (`isNewerRegistration`) lets go.
 */
export class EnvironmentRegistry {
  private constructor(
    private readonly kv: KV,
    private readonly instanceId: string,
    private readonly boot: string,
  ) {}

  /**
   * Opens the bucket, creating it (with `ttlMs`, and `replicas` copies in a NATS cluster) when
   * missing — also after a NATS restart, since memory storage does not survive one. Throws
   * {@link NoJetStreamError} when the server has JetStream off.
   */
  static async open(nc: NatsConnection, instanceId: string, boot: string, ttlMs: number, replicas = 1): Promise<EnvironmentRegistry> {
    if (nc.info && !nc.info.jetstream) throw new NoJetStreamError();
    // Registry calls give up after 2 s (the default is 5): a client waiting for a lookup waits at most that.
    const kvm = new Kvm(jetstream(nc, { timeout: 2_000 }));
    let kv: KV;
    try {
      kv = await kvm.create(REGISTRY_BUCKET, { ttl: ttlMs, history: 1, storage: 'memory', replicas });
    } catch (error) {
      // The bucket exists with another configuration (another instance runs a different
      // --registry-ttl-ms): use it as it is. Anything else (a NATS cluster still electing its
      // JetStream leader) is the caller's to retry.
      kv = await kvm.open(REGISTRY_BUCKET).catch(() => {
        throw error;
      });
    }
    return new EnvironmentRegistry(kv, instanceId, boot);
  }

  /** The holder of an environment, or null when no live instance holds it. */
  async lookup(environmentId: string): Promise<EnvironmentEntry | null> {
    return (await this.read(environmentKey(environmentId), EnvironmentEntry))?.value ?? null;
  }

  /**
   * A new registration here, written unconditionally (the newest registration is the one
   * happening now). Its `registeredAt` is `now`, or one past the entry it replaces when that one is
   * ahead (another instance's clock): see `isNewerRegistration`.
   */
  async register(environmentId: string, now: number, codex?: CodexRegistrationEntry): Promise<{ revision: number; registeredAt: number }> {
    const previous = await this.lookup(environmentId);
    const registeredAt = Math.max(now, (previous?.registeredAt ?? 0) + 1);
    return { revision: await this.rewrite(environmentId, registeredAt, codex), registeredAt };
  }

  /**
   * Keeps this instance's entry alive with compare-and-set on `revision`. When another instance
   * wrote since, this one's registration is older: `{held: false}`. A missing entry (expired, or
   * the bucket was lost with a NATS restart) is recreated — unless another instance recreated it
   * first.
   */
  async refresh(environmentId: string, registeredAt: number, revision: number, codex?: CodexRegistrationEntry): Promise<Announcement> {
    const key = environmentKey(environmentId);
    const value = this.entry(registeredAt, codex);
    if (revision > 0) {
      try {
        return { held: true, revision: await this.kv.update(key, value, revision), recreated: false };
      } catch {
        /* someone else wrote, or the entry expired or vanished: look */
      }
    }
    const current = await this.read(key, EnvironmentEntry);
    const holder = current?.value;
    if (current && holder) {
      if (holder.instance === this.instanceId && holder.boot === this.boot) {
        return { held: true, revision: await this.kv.update(key, value, current.revision), recreated: false };
      }
      return { held: false, holder };
    }
    try {
      const revision = current ? await this.kv.update(key, value, current.revision) : await this.kv.create(key, value);
      return { held: true, revision, recreated: true };
    } catch {
      const winner = await this.lookup(environmentId);
      if (winner) return { held: false, holder: winner };
      throw new Error('registry entry changed concurrently');
    }
  }

  /** Writes this instance's entry unconditionally (a new registration, or one found newer than the entry: see `isNewerRegistration`). */
  async rewrite(environmentId: string, registeredAt: number, codex?: CodexRegistrationEntry): Promise<number> {
    return this.kv.put(environmentKey(environmentId), this.entry(registeredAt, codex));
  }

  /** Removes this instance's entry (only if nobody wrote since `revision`). */
  async withdraw(environmentId: string, revision: number): Promise<void> {
    try {
      await this.kv.delete(environmentKey(environmentId), { previousSeq: revision });
    } catch {
      /* another instance holds it now, or it is gone already */
    }
  }

  /** Says this instance (this process: `boot`) is alive for another TTL. */
  async heartbeat(startedAt: number): Promise<void> {
    const entry: InstanceEntry = { boot: this.boot, startedAt };
    await this.kv.put(RegistryKey.instance(this.instanceId), JSON.stringify(entry));
  }

  /** The boot token of the live process of an instance, or null when the instance is not alive. */
  async instanceBoot(instanceId: string): Promise<string | null> {
    return (await this.read(RegistryKey.instance(instanceId), InstanceEntry))?.value?.boot ?? null;
  }

  /**
   * A key's entry: its revision, and its value (null when deleted or not valid), or null when the
   * key has no entry at all.
   */
  private async read<T>(key: string, schema: Schema<T>): Promise<{ revision: number; value: T | null } | null> {
    const entry = await this.kv.get(key);
    if (!entry) return null;
    return { revision: entry.revision, value: entry.operation === 'PUT' ? parseJson(schema, entry.string()) : null };
  }

  /** This instance's entry; `codex`: the registration of the codex executor held (none: an execrelay agent). */
  private entry(registeredAt: number, codex?: CodexRegistrationEntry): string {
    const entry: EnvironmentEntry = { instance: this.instanceId, boot: this.boot, registeredAt, ...(codex ? { codex } : {}) };
    return JSON.stringify(entry);
  }
}

type Schema<T> = { safeParse(value: unknown): { success: true; data: T } | { success: false } };

function environmentKey(environmentId: string): string {
  return RegistryKey.environment(environmentToken(environmentId));
}

function parseJson<T>(schema: Schema<T>, text: string): T | null {
  try {
    const parsed = schema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
