import type { Logger } from '../src/logging/logger.js';
import { EnvironmentRegistry, NoJetStreamError } from './environment-registry.js';
import type { FleetConnection } from './fleet-connection.js';
import { FleetSubject, encodeFleetControlMessage, environmentToken, type EnvironmentEntry } from './fleet-wire.js';
import type { RelayEvents } from './relay-events.js';

export const DEFAULT_REGISTRY_TTL_MS = 15_000;
/** A positive registry lookup is reused this long for the checks on new clients and streams. */
const AVAILABILITY_CACHE_MS = 2_000;
/** How long a starting instance retries opening the registry (JetStream electing a leader). */
const REGISTRY_OPEN_WAIT_MS = 30_000;
/** How long a holder has to answer a probe (silence counts as alive; only "no responders" does not). */
const PROBE_TIMEOUT_MS = 1_000;

/**
 * This instance's use of the fleet registry (`EnvironmentRegistry`, a NATS KV bucket): opening it
 * (retried while JetStream elects a leader; reopened after a NATS restart or a lost bucket), the
 * instance's heartbeat, where an environment is held (a registry lookup confirmed by probing the
 * holder, a positive answer reused for a while), and whether another instance's process is alive.
 * Failed registry operations are counted and logged here.
 */
export class FleetRegistry {
  readonly ttlMs: number;
  private readonly replicas: number;
  private registry: EnvironmentRegistry | null = null;
  /** Positive lookups, reused until `until`: the holder's entry (null: no entry, the holder answered a probe). */
  private readonly available = new Map<string, { until: number; entry: EnvironmentEntry | null }>();

  constructor(
    options: { ttlMs?: number; replicas?: number },
    private readonly instanceId: string,
    private readonly boot: string,
    private readonly startedAt: number,
    /** The NATS connection, once there is one. */
    private readonly connection: () => FleetConnection | null,
    private readonly events: RelayEvents,
    private readonly logger: Logger,
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_REGISTRY_TTL_MS;
    if (this.ttlMs < 1000) throw new Error('--registry-ttl-ms must be at least 1000');
    this.replicas = options.replicas ?? 1;
    if (!Number.isInteger(this.replicas) || this.replicas < 1 || this.replicas > 5) throw new Error('--registry-replicas must be 1 to 5');
  }

  /** The registry's entries (null until it was first opened). */
  get entries(): EnvironmentRegistry | null {
    return this.registry;
  }

  /**
   * Opens the registry when joining. JetStream may still be electing its leader (a NATS cluster
   * starting): retried for a while. Throws when JetStream is off or the registry never opens.
   */
  async open(): Promise<void> {
    const giveUpAt = Date.now() + REGISTRY_OPEN_WAIT_MS;
    for (;;) {
      try {
        await this.reopen();
        return;
      } catch (error) {
        if (error instanceof NoJetStreamError) throw error;
        if (Date.now() > giveUpAt) {
          throw new Error(
            `cannot open the fleet registry in NATS after ${REGISTRY_OPEN_WAIT_MS / 1000} s: ${(error as Error).message}` +
              ` (is JetStream up on enough servers for --registry-replicas ${this.replicas}?)`,
          );
        }
        this.logger.warn({ err: (error as Error).message }, 'fleet registry not available yet; retrying');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  /** Opens (creating if needed) the registry bucket and says this instance is alive. */
  async reopen(): Promise<void> {
    this.registry = await EnvironmentRegistry.open(this.connection()!.nats, this.instanceId, this.boot, this.ttlMs, this.replicas);
    await this.registry.heartbeat(this.startedAt);
  }

  /** Says this instance is alive for another TTL; false (counted) when the registry failed. */
  async heartbeat(): Promise<boolean> {
    try {
      await this.registry!.heartbeat(this.startedAt);
      return true;
    } catch (error) {
      this.error(error);
      return false;
    }
  }

  /**
   * Whether another instance holds the environment according to the registry. Rejects when the
   * registry cannot be asked (NATS is down).
   */
  async heldElsewhere(environmentId: string): Promise<boolean> {
    const holder = await this.holderElsewhere(environmentId);
    // An environment a codex executor holds is not one an execrelay client can use.
    return holder !== null && !holder.entry?.codex;
  }

  /**
   * The registration of the codex executor another live instance holds for the environment, or
   * null (nobody, an execrelay agent, or this instance's stale entry). Rejects when the registry
   * cannot be asked (NATS is down). Always asked afresh (no reused answer): a codex executor's
   * registration changes with every start, and a client told of a dead holder would only time out.
   */
  async codexRegistrationElsewhere(environmentId: string): Promise<EnvironmentEntry | null> {
    const holder = await this.holderElsewhere(environmentId, false);
    return holder?.entry?.codex ? holder.entry : null;
  }

  /**
   * Another live instance holding the environment: its registry entry (null when there is none
   * but the holder answered a probe), or null when none does. Rejects when NATS is down.
   */
  private async holderElsewhere(environmentId: string, reuse = true): Promise<{ entry: EnvironmentEntry | null } | null> {
    const cached = this.available.get(environmentId);
    if (reuse && cached && cached.until > Date.now()) return cached;
    const link = this.connection();
    if (!this.registry || !link?.connected) throw new Error('NATS unavailable');
    const holder = await this.registry.lookup(environmentId);
    if (holder?.instance === this.instanceId) return null; // this instance's entry, its executor gone
    // The entry of an instance that died lives until its TTL, but NATS knows at once that nobody
    // subscribes to the environment any more. Without an entry (a NATS restart emptied the
    // registry moments ago, holders are rewriting it) a holder that answers is proof enough.
    const probe = await this.probeHolder(link, environmentId);
    const available = holder ? probe !== 'nobody' : probe === 'answered';
    if (!available) return null;
    const found = { until: Date.now() + AVAILABILITY_CACHE_MS, entry: holder };
    this.available.set(environmentId, found);
    return found;
  }

  /** The boot token of an instance's live process, or null when the instance is not alive. */
  instanceBoot(instanceId: string): Promise<string | null> {
    return this.registry!.instanceBoot(instanceId);
  }

  /** Counts and logs a failed registry operation. */
  error(error: unknown): void {
    this.events.fleetError('registry');
    this.logger.warn({ err: (error as Error).message }, 'relay registry operation failed');
  }

  /** Forgets availability answers that expired. */
  prune(now: number): void {
    for (const [id, { until }] of this.available) if (until <= now) this.available.delete(id);
  }

  /**
   * Asks NATS who holds the environment: `answered` (a holder with a live executor replied),
   * `nobody` (no subscriber), or `silent` (a subscriber that did not reply in time).
   */
  private probeHolder(link: FleetConnection, environmentId: string): Promise<'answered' | 'nobody' | 'silent'> {
    return link.ask(FleetSubject.control(environmentToken(environmentId)), encodeFleetControlMessage({ type: 'probe' }), PROBE_TIMEOUT_MS);
  }
}
