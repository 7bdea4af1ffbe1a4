import { jetstream } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { isBindableIdentity, type BindResult, type EnvironmentBindings } from './environment-bindings.js';
import { environmentToken } from './fleet-wire.js';

/**
 * The fleet's environment bindings: a JetStream KV bucket with file storage (bindings are
 * security state: they survive a NATS restart) and no TTL. Key: the environment's token
 * (`environmentToken`); value: JSON {@link BindingEntry}.
 */
export const BINDINGS_BUCKET = 'execrelay_bindings';

/** The value of a binding in {@link BINDINGS_BUCKET}. */
export interface BindingEntry {
  environmentId: string;
  identity: string;
  /** Unix ms. */
  boundAt: number;
}

/** Opens (creating it when missing) the bindings bucket, with `replicas` copies in a NATS cluster: a relay instance's opener. */
export async function openBindingsBucket(nc: NatsConnection, replicas: number): Promise<KV> {
  const kvm = new Kvm(jetstream(nc, { timeout: 2_000 }));
  try {
    return await kvm.create(BINDINGS_BUCKET, { history: 1, storage: 'file', replicas });
  } catch (error) {
    // Created by another instance with another configuration (say another --registry-replicas): use it as it is.
    return kvm.open(BINDINGS_BUCKET).catch(() => {
      throw error;
    });
  }
}

/** Opens the bindings bucket only if it exists (the operator's commands never create it). */
export async function existingBindingsBucket(nc: NatsConnection): Promise<KV> {
  const kvm = new Kvm(jetstream(nc, { timeout: 5_000 }));
  try {
    // `open` does not check that the bucket exists; its status does.
    const kv = await kvm.open(BINDINGS_BUCKET);
    await kv.status();
    return kv;
  } catch (error) {
    throw new Error(`no environment bindings in this NATS (bucket ${BINDINGS_BUCKET}: ${(error as Error).message}); no fleet relay has bound an environment yet`);
  }
}

/**
 * Bindings shared by every instance of a fleet through {@link BINDINGS_BUCKET}: the first
 * registration of an environment anywhere wins (`kv.create` is first-writer-wins), and every
 * instance checks every registration against the bucket. While NATS cannot be asked, an instance
 * still admits a key it has itself seen bound to that environment (a restarted agent comes back);
 * anything else is refused as retryable (the bindings are unavailable), never admitted blindly.
 */
export class FleetBindings implements EnvironmentBindings {
  private bucket: KV | null = null;
  /** Bindings this instance has read or written, for answering while NATS is down (bounded). */
  private readonly seen = new Map<string, string>();

  constructor(
    /** The fleet's NATS connection and whether it is up now (null before joining). */
    private readonly connection: () => { nats: NatsConnection; connected: boolean } | null,
    /** {@link openBindingsBucket} (a relay instance) or {@link existingBindingsBucket} (an operator's command). */
    private readonly openBucket: (nc: NatsConnection) => Promise<KV>,
    private readonly maxBindings: number,
  ) {}

  async bind(environmentId: string, identity: string): Promise<BindResult> {
    try {
      const kv = await this.open();
      const key = environmentToken(environmentId);
      const bound = await this.read(kv, key);
      if (bound) return this.answer(environmentId, bound, identity);
      if ((await kv.status()).values >= this.maxBindings) return 'full';
      const entry: BindingEntry = { environmentId, identity, boundAt: Date.now() };
      try {
        await kv.create(key, JSON.stringify(entry));
      } catch (error) {
        // Another instance bound it first: its binding decides.
        const winner = await this.read(kv, key);
        if (!winner) throw error;
        return this.answer(environmentId, winner, identity);
      }
      this.remember(environmentId, identity);
      return 'bound';
    } catch (error) {
      if (this.seen.get(environmentId) === identity) return 'matches';
      throw error;
    }
  }

  async unbind(environmentId: string): Promise<string | null> {
    const kv = await this.open();
    const key = environmentToken(environmentId);
    const bound = await this.read(kv, key);
    if (bound) await kv.purge(key);
    this.seen.delete(environmentId);
    return bound?.identity ?? null;
  }

  async list(): Promise<Map<string, string>> {
    const kv = await this.open();
    const bindings = new Map<string, string>();
    for await (const key of await kv.keys()) {
      const entry = await this.read(kv, key);
      if (entry) bindings.set(entry.environmentId, entry.identity);
    }
    return bindings;
  }

  private answer(environmentId: string, bound: BindingEntry, identity: string): BindResult {
    this.remember(environmentId, bound.identity);
    return bound.identity === identity ? 'matches' : 'mismatch';
  }

  private remember(environmentId: string, identity: string): void {
    this.seen.delete(environmentId);
    if (this.seen.size >= this.maxBindings) this.seen.delete(this.seen.keys().next().value!);
    this.seen.set(environmentId, identity);
  }

  private async open(): Promise<KV> {
    const link = this.connection();
    if (!link?.connected) throw new Error('NATS unavailable');
    if (!this.bucket) this.bucket = await this.openBucket(link.nats);
    return this.bucket;
  }

  /** A binding's entry, or null when there is none (never written, unbound, or not valid). */
  private async read(kv: KV, key: string): Promise<BindingEntry | null> {
    let entry;
    try {
      entry = await kv.get(key);
    } catch (error) {
      this.bucket = null; // reopen next time (the bucket may have been lost)
      throw error;
    }
    if (!entry || entry.operation !== 'PUT') return null;
    try {
      const value = JSON.parse(entry.string()) as Partial<BindingEntry>;
      if (typeof value.environmentId === 'string' && typeof value.identity === 'string' && isBindableIdentity(value.identity)) {
        return { environmentId: value.environmentId, identity: value.identity, boundAt: Number(value.boundAt) || 0 };
      }
    } catch {
      /* not a binding */
    }
    return null;
  }
}
