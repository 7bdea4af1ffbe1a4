import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Logger } from '../src/logging/logger.js';
import { FleetConnection } from './fleet-connection.js';
import { FleetRegistry } from './fleet-registry.js';
import { FleetAuthorizations, type AuthorizationMinter, type AuthorizationUse } from './fleet-authorizations.js';
import { FleetRegistrations, type RegistrationClaim } from './fleet-registrations.js';
import { FleetSockets, type ExecutorKind } from './fleet-sockets.js';
import {
  FleetSubject,
  environmentToken,
  parseFleetControlMessage,
  isNewerRegistration,
  validateInstanceId,
  type CodexRegistrationEntry,
  type EnvironmentEntry,
} from './fleet-wire.js';
import type { RelayLimits } from './relay-config.js';
import type { RelayEvents } from './relay-events.js';
import { RecentProofs } from './recent-proofs.js';
import type { ClientLink, EnvironmentWatcher, FrameSocket, StreamRouter } from './stream-router.js';
import type { CodexExecutorLink, CodexExecutorWatcher, CodexHarnessLink, CodexRendezvousRouter } from './codex-rendezvous-router.js';
import { encodeRegistryPublicKey } from '../src/noise-hybrid/registry-public-key.js';

export interface FleetOptions {
  /** `nats://[user:password@]host:port`, several separated by commas. */
  natsUrl: string;
  /** This instance's id (letters, digits, `_`, `-`); default: host name and a random suffix. */
  instanceId?: string;
  /** Registry entries expire this long after their last refresh (refreshed every third of it). */
  registryTtlMs?: number;
  /** Copies of the registry in a NATS cluster (1–5; 3 survives losing one NATS server). */
  registryReplicas?: number;
  /**
   * The fleet secret shared by every instance (`--fleet-secret-file`, `readFleetSecret`): the codex
   * rendezvous URLs and harness key authorizations one instance signs verify on every other.
   * Without it each instance signs with a secret of its own.
   */
  secret?: Uint8Array;
}

/** The longest an executor's `registered` waits for its registry entry. */
const REGISTRATION_WAIT_MS = 2_000;

/** What the metrics read at scrape time. */
export interface FleetState {
  /** Always true: a fleet member (the gauge reads 0 for a single relay). */
  readonly member: true;
  readonly connected: boolean;
  /** Environments this instance holds with a live entry in the registry. */
  readonly registeredEnvironments: number;
  /** Client sockets of other instances this instance routes streams for. */
  readonly remoteClients: number;
}

/** An environment whose executor socket this instance holds (or waits for within its grace). */
interface HeldEnvironment {
  readonly token: string;
  readonly subscriptions: Subscription[];
  /** The registry revision this instance last wrote for it (0: not in the registry). */
  revision: number;
  /** The registration's place in the fleet's order (`isNewerRegistration`); 0 until written. */
  registeredAt: number;
  announcing: boolean;
  /** A registration being written: a `takeover` heard meanwhile is judged once it is done. */
  registering: Promise<void> | null;
  /** Held by a codex executor: its registration, written into the entry (absent: an execrelay agent). */
  codex: CodexRegistrationEntry | undefined;
}

/**
 * One relay instance's membership in a fleet that shares routing through NATS: joining and
 * leaving it, and the environments whose executors this instance holds — their subjects, their
 * registrations, and takeovers. The instance holding an executor's socket subscribes to its
 * environment's subjects; client sockets of other instances reach it there (`FleetSockets`), and
 * the registry (`FleetRegistry`) answers "is this environment online, and where" at once. The
 * router routes every frame and checks every limit; this fleet only carries frames.
 *
 * When an executor moves (its instance died, or its link broke and the load balancer sent it
 * elsewhere), the new holder announces a `takeover`; the old one lets go without resetting
 * anything. The streams' routes are rebuilt from either end: a client's `resume` (its socket
 * moved too) or, for a client whose socket stayed put, the executor's first frames — published as
 * orphans, which the instance holding the stream's client claims. Nothing is acknowledged by an
 * instance: whatever NATS loses, the endpoints retransmit.
 *
 * Codex executors (`codex exec-server --remote`, `CodexRendezvousRouter`) are held the same way:
 * one registry entry per environment (with the codex registration in it, so `connect` and
 * `validate` work on every instance), the same subjects and takeovers; every use of a codex
 * harness key authorization is asked of the relay process that minted it (`FleetAuthorizations`),
 * and an executor's socket opening on another instance than its registration claims the
 * registration from the process that minted it (`FleetRegistrations`).
 */
export class NatsFleet implements EnvironmentWatcher, CodexExecutorWatcher {
  readonly instanceId: string;
  /** Tells this process from an earlier one with the same instance id (in client subjects). */
  readonly boot = randomBytes(6).toString('base64url');
  private readonly startedAt = Date.now();
  private link: FleetConnection | null = null;
  private readonly registry: FleetRegistry;
  private readonly sockets: FleetSockets;
  private stopped = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private resyncing: Promise<void> | null = null;
  /** The last resync (registry reopened, entries rewritten) succeeded; a tick retries it if not. */
  private registryHealthy = false;
  private readonly held = new Map<string, HeldEnvironment>();
  private readonly authorizations: FleetAuthorizations;
  /** Codex executor registrations minted here and claimed by the instance their socket opens at. */
  readonly registrations: FleetRegistrations;

  constructor(
    private readonly options: FleetOptions,
    private readonly router: StreamRouter,
    private readonly limits: RelayLimits,
    private readonly events: RelayEvents,
    private readonly logger: Logger,
    /** The codex rendezvous router: codex executors held here are fleet-wide too (null: not routed through the fleet). */
    private readonly codexRouter: CodexRendezvousRouter | null = null,
  ) {
    this.instanceId = options.instanceId ?? defaultInstanceId();
    const invalid = validateInstanceId(this.instanceId);
    if (invalid) throw new Error(`invalid --instance-id ${JSON.stringify(this.instanceId)}: ${invalid}`);
    const connection = () => this.link;
    const registryOptions = {
      ...(options.registryTtlMs !== undefined ? { ttlMs: options.registryTtlMs } : {}),
      ...(options.registryReplicas !== undefined ? { replicas: options.registryReplicas } : {}),
    };
    this.registry = new FleetRegistry(registryOptions, this.instanceId, this.boot, this.startedAt, connection, events, logger);
    this.sockets = new FleetSockets(this.instanceId, this.boot, connection, router, events, logger, (id, kind) => this.environmentAvailable(id, kind), codexRouter);
    this.authorizations = new FleetAuthorizations(this.minter, connection, new RecentProofs(limits.maxRecentProofs), logger);
    this.registrations = new FleetRegistrations(this.minter, connection, logger);
    router.watcher = this;
    if (codexRouter) codexRouter.watcher = this;
  }

  /** This relay process, as the minter of codex harness key authorizations. */
  get minter(): AuthorizationMinter {
    return { instance: this.instanceId, boot: this.boot };
  }

  /** The NATS connection (null until joined), for the fleet's other buckets (`FleetBindings`). */
  get connection(): FleetConnection | null {
    return this.link;
  }

  get state(): FleetState {
    let registered = 0;
    for (const environment of this.held.values()) if (environment.revision > 0) registered++;
    return { member: true, connected: this.link?.connected ?? false, registeredEnvironments: registered, remoteClients: this.sockets.remoteClientCount };
  }

  /**
   * Connects to NATS (waiting for it if it is not up yet) and opens the registry. Rejects when
   * NATS is reachable but unusable (no JetStream, payload limit too small).
   */
  async start(): Promise<void> {
    this.logger.info({ instanceId: this.instanceId }, 'joining the relay fleet');
    const link = await FleetConnection.open(this.options.natsUrl, `execrelay-relay ${this.instanceId}`, this.events, this.logger, () => void this.resync());
    this.link = link;
    const maxPayload = link.maxPayload;
    const largestFrame = Math.max(this.limits.maxFrameBytes, this.limits.codexMaxMessageBytes);
    if (maxPayload < largestFrame) {
      await link.close();
      throw new Error(`NATS max_payload is ${maxPayload} bytes, smaller than a relay frame (${largestFrame}): raise max_payload in nats-server's config`);
    }
    try {
      await this.registry.open();
    } catch (error) {
      await link.close();
      throw error;
    }
    this.sockets.subscribe();
    this.authorizations.subscribe();
    this.registrations.subscribe();
    for (const environmentId of this.held.keys()) this.subscribeHeld(environmentId);
    // Executors that registered while this instance waited for NATS.
    await this.refreshAll();
    this.registryHealthy = true;
    this.tickTimer = setInterval(() => void this.tick(), Math.max(250, Math.floor(this.registry.ttlMs / 3)));
    this.tickTimer.unref();
    this.logger.info({ instanceId: this.instanceId }, 'joined the relay fleet');
  }

  /** Leaves the fleet: withdraws this instance's registry entries and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tickTimer);
    const link = this.link;
    if (!link) return;
    const entries = this.registry.entries;
    if (link.connected && entries) {
      await Promise.allSettled([...this.held.entries()].map(([id, h]) => (h.revision > 0 ? entries.withdraw(id, h.revision) : undefined)));
    }
    await link.close();
  }

  /**
   * Whether a client may connect for this environment: held here, or held by a live instance
   * according to the registry. Rejects when the registry cannot be asked (NATS is down).
   */
  async environmentAvailable(environmentId: string, kind: ExecutorKind = 'native'): Promise<boolean> {
    if (kind === 'codex') return Boolean(this.codexRouter?.hasLiveExecutor(environmentId)) || (await this.registry.codexRegistrationElsewhere(environmentId)) !== null;
    return this.router.hasLiveExecutor(environmentId) || this.registry.heldElsewhere(environmentId);
  }

  /**
   * The codex registration another live instance holds for the environment (its registry entry),
   * or null. Rejects when the registry cannot be asked (NATS is down).
   */
  codexRegistrationElsewhere(environmentId: string): Promise<EnvironmentEntry | null> {
    return this.registry.codexRegistrationElsewhere(environmentId);
  }

  /** Uses a codex harness key authorization's nonce, fleet-wide (see `FleetAuthorizations`). */
  useAuthorization(minter: AuthorizationMinter | null, nonce: string, expiresAt: number): Promise<AuthorizationUse> {
    return this.authorizations.use(minter, nonce, expiresAt);
  }

  /** Claims a codex executor registration from the relay process that minted it (see `FleetRegistrations`). */
  claimRegistration(minter: AuthorizationMinter, environmentId: string, registrationId: string): Promise<RegistrationClaim> {
    return this.registrations.claim(minter, environmentId, registrationId);
  }

  /** The codex router's link for a harness socket here whose executor another instance holds. */
  harnessLink(socket: FrameSocket, environmentId: string, registrationId: string, credentialId: string): CodexHarnessLink {
    return this.sockets.harnessLink(socket, environmentId, registrationId, credentialId);
  }

  /** The router's link for a client socket connected here (see `FleetSockets.clientLink`). */
  clientLink(socket: FrameSocket, environmentId: string, credentialId: string): ClientLink {
    return this.sockets.clientLink(socket, environmentId, credentialId);
  }

  // -------------------------------------------------------------------------------------------
  // Executors held here (EnvironmentWatcher)

  linkUp(environmentId: string, registeredAt: number, codex?: CodexRegistrationEntry): Promise<void> {
    let held = this.held.get(environmentId);
    if (!held) {
      held = { token: environmentToken(environmentId), subscriptions: [], revision: 0, registeredAt: 0, announcing: false, registering: null, codex };
      this.held.set(environmentId, held);
      this.subscribeHeld(environmentId);
    }
    held.codex = codex;
    held.registeredAt = 0;
    held.revision = 0;
    const registering = this.beginRegistration(environmentId, held, registeredAt);
    // Confirmed to the executor once in the registry, or after a bounded wait (NATS slow or down:
    // it is reachable through this instance meanwhile, and the next tick registers it).
    return Promise.race([registering, new Promise<void>((resolve) => setTimeout(resolve, REGISTRATION_WAIT_MS).unref())]);
  }

  linkDown(environmentId: string): void {
    const held = this.held.get(environmentId);
    if (!held) return;
    const revision = held.revision;
    held.revision = 0;
    // Offline for new clients at once; the subscriptions stay, so streams through other instances
    // find the executor again if it comes back here within its grace.
    if (revision > 0 && this.link?.connected) void this.registry.entries?.withdraw(environmentId, revision);
  }

  forgotten(environmentId: string): void {
    const held = this.held.get(environmentId);
    if (!held) return;
    this.held.delete(environmentId);
    for (const subscription of held.subscriptions) subscription.unsubscribe();
    if (held.revision > 0 && this.link?.connected) void this.registry.entries?.withdraw(environmentId, held.revision);
    this.sockets.forgetEnvironment(environmentId);
  }

  orphanFrame(environmentId: string, data: Buffer): void {
    this.sockets.publishOrphan(environmentId, data);
  }

  // -------------------------------------------------------------------------------------------
  // Codex executors held here (CodexExecutorWatcher)

  codexLinkUp(link: CodexExecutorLink): void {
    // Without its key no other instance could name the executor at `connect`: it stays this instance's.
    if (!link.executorKey) return;
    void this.linkUp(link.environmentId, Date.now(), {
      registrationId: link.registrationId,
      credentialId: link.credentialId,
      executorKey: encodeRegistryPublicKey(link.executorKey),
    });
  }

  /** A codex executor's streams end with its socket (they do not wait for it): the environment is let go at once. */
  codexLinkDown(environmentId: string): void {
    if (this.router.hasLiveExecutor(environmentId)) return;
    this.linkDown(environmentId);
    this.forgotten(environmentId);
  }

  /** Whether an executor of either kind is connected here for the environment. */
  private holdsLive(environmentId: string): boolean {
    return this.router.hasLiveExecutor(environmentId) || Boolean(this.codexRouter?.hasLiveExecutor(environmentId));
  }

  /** Another instance holds a newer registration: let go of the executor here, whichever kind. */
  private release(environmentId: string): void {
    this.router.releaseEnvironment(environmentId);
    this.codexRouter?.releaseEnvironment(environmentId);
  }

  private subscribeHeld(environmentId: string): void {
    const held = this.held.get(environmentId);
    if (!this.link || !held || held.subscriptions.length > 0) return;
    held.subscriptions.push(
      this.link.subscribe(FleetSubject.toExecutor(held.token), (msg) => this.sockets.fromRemoteClient(environmentId, msg)),
      this.link.subscribe(FleetSubject.control(held.token), (msg) => this.control(environmentId, msg)),
    );
  }

  private control(environmentId: string, msg: Msg): void {
    const message = parseFleetControlMessage(msg.data);
    if (!message) {
      this.events.fleetError('control');
      return;
    }
    const held = this.held.get(environmentId);
    if (!held) return;
    switch (message.type) {
      case 'probe':
        // Only while the executor is connected: within its grace it is offline for new clients.
        if (msg.reply && this.holdsLive(environmentId)) msg.respond(new Uint8Array(0));
        return;
      case 'takeover': {
        if (message.instance === this.instanceId) return;
        if (held.registering) {
          void held.registering.then(() => this.control(environmentId, msg));
          return;
        }
        const mine = { registeredAt: held.registeredAt, instance: this.instanceId };
        if (this.holdsLive(environmentId) && held.registeredAt > 0 && isNewerRegistration(mine, message)) {
          // This registration is the newer one: tell the other instance to let go.
          this.link?.publishControl(environmentId, { type: 'takeover', ...mine });
          return;
        }
        this.logger.info({ holder: message.instance }, 'environment taken over by another relay instance');
        held.revision = 0; // the entry is the other instance's now: do not withdraw it
        this.release(environmentId);
        return;
      }
      case 'detach':
        this.sockets.detach(message.client);
        return;
      case 'claim':
        this.sockets.claim(environmentId, message.client, message.streamId);
        return;
    }
  }

  /** Starts writing a registration; a `takeover` heard meanwhile waits for it (`held.registering`). */
  private beginRegistration(environmentId: string, held: HeldEnvironment, now: number): Promise<void> {
    const registering = this.register(environmentId, held, now).finally(() => {
      if (held.registering === registering) held.registering = null;
    });
    held.registering = registering;
    return registering;
  }

  /**
   * Writes a new registration to the registry and tells any previous holder to let go. Until it
   * is written (NATS down, a failed write) `registeredAt` stays 0 and every tick tries again.
   */
  private async register(environmentId: string, held: HeldEnvironment, now: number): Promise<void> {
    const entries = this.registry.entries;
    if (!entries || !this.link?.connected) return;
    try {
      const { revision, registeredAt } = await entries.register(environmentId, now, held.codex);
      if (this.held.get(environmentId) !== held || !this.holdsLive(environmentId)) return;
      held.revision = revision;
      held.registeredAt = registeredAt;
      this.link.publishControl(environmentId, { type: 'takeover', instance: this.instanceId, registeredAt });
    } catch (error) {
      this.registry.error(error);
    }
  }

  /**
   * Keeps a held environment's entry alive. When another instance wrote it since (or recreated it
   * first after a NATS restart), the older registration lets go: this one, or the other — then this
   * one rewrites the entry and announces a takeover.
   */
  private async refresh(environmentId: string, held: HeldEnvironment): Promise<void> {
    const entries = this.registry.entries;
    if (!entries || held.announcing || held.registering || !this.holdsLive(environmentId)) return;
    if (held.registeredAt === 0) {
      // The registration was never written (NATS was down when the executor came): write it now.
      void this.beginRegistration(environmentId, held, Date.now());
      return;
    }
    held.announcing = true;
    try {
      const result = await entries.refresh(environmentId, held.registeredAt, held.revision, held.codex);
      if (this.held.get(environmentId) !== held || !this.holdsLive(environmentId)) return;
      const mine = { registeredAt: held.registeredAt, instance: this.instanceId };
      if (result.held) {
        held.revision = result.revision;
        // A recreated entry (expired, or the bucket was lost with a NATS restart): say so again.
        if (result.recreated) this.link?.publishControl(environmentId, { type: 'takeover', ...mine });
      } else if (isNewerRegistration(mine, result.holder)) {
        held.revision = await entries.rewrite(environmentId, held.registeredAt, held.codex);
        this.link?.publishControl(environmentId, { type: 'takeover', ...mine });
      } else {
        this.logger.warn({ holder: result.holder.instance }, 'another relay instance holds a newer registration of this environment; letting go');
        held.revision = 0;
        this.release(environmentId);
      }
    } catch (error) {
      this.registry.error(error);
    } finally {
      held.announcing = false;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Staying a member: after reconnects, and every third of the registry TTL

  /** After (re)connecting: reopen the registry (lost with a NATS restart) and re-register. */
  private resync(): Promise<void> {
    this.resyncing ??= (async () => {
      try {
        if (!this.link?.connected) return;
        await this.registry.reopen();
        await this.refreshAll();
        this.registryHealthy = true;
      } catch (error) {
        this.registryHealthy = false;
        this.registry.error(error);
      } finally {
        this.resyncing = null;
      }
    })();
    return this.resyncing;
  }

  /** Refreshes (or writes) the entry of every environment held here. */
  private async refreshAll(): Promise<void> {
    await Promise.all([...this.held.entries()].map(([id, held]) => this.refresh(id, held)));
  }

  private async tick(): Promise<void> {
    if (this.stopped || !this.link?.connected || !this.registry.entries) return;
    if (!this.registryHealthy) {
      await this.resync();
      return;
    }
    if (!(await this.registry.heartbeat())) {
      // The bucket may be gone (deleted, or lost by a JetStream server): reopen it next tick.
      this.registryHealthy = false;
      return;
    }
    await this.refreshAll();
    await this.sockets.sweepRemoteClients((instanceId) => this.registry.instanceBoot(instanceId), this.registry.ttlMs);
    await this.sockets.sweepCodexHarnesses();
    const now = Date.now();
    this.registry.prune(now);
    this.sockets.prune(now);
  }
}

function defaultInstanceId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 48) || 'relay';
  return `${host}-${randomBytes(3).toString('hex')}`;
}
