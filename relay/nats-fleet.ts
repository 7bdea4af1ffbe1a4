import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Msg, Subscription } from '@nats-io/transport-node';
import WebSocket from 'ws';
import type { Logger } from '../src/logging/logger.js';
import { EnvironmentRegistry, NoJetStreamError } from './environment-registry.js';
import { FleetConnection } from './fleet-connection.js';
import {
  FleetSubject,
  encodeFleetControlMessage,
  environmentToken,
  parseClientSubject,
  parseFleetControlMessage,
  isNewerRegistration,
  validateInstanceId,
  type FleetControlMessage,
} from './fleet-wire.js';
import type { RelayLimits } from './relay-config.js';
import type { RelayEvents } from './relay-events.js';
import { ClientLink, type EnvironmentWatcher, type ExecutorElsewhere, type FrameSocket, type StreamRouter } from './stream-router.js';

export interface FleetOptions {
  /** `nats://[user:password@]host:port`, several separated by commas. */
  natsUrl: string;
  /** This instance's id (letters, digits, `_`, `-`); default: host name and a random suffix. */
  instanceId?: string;
  /** Registry entries expire this long after their last refresh (refreshed every third of it). */
  registryTtlMs?: number;
  /** Copies of the registry in a NATS cluster (1–5; 3 survives losing one NATS server). */
  registryReplicas?: number;
}

export const DEFAULT_REGISTRY_TTL_MS = 15_000;
/** A positive registry lookup is reused this long for the checks on new streams. */
const AVAILABILITY_CACHE_MS = 2_000;
/** How long a starting instance retries opening the registry (JetStream electing a leader). */
const REGISTRY_OPEN_WAIT_MS = 30_000;
/** The longest an executor's `registered` waits for its registry entry. */
const REGISTRATION_WAIT_MS = 2_000;
/** How long a holder has to answer a probe (silence counts as alive; only "no responders" does not). */
const PROBE_TIMEOUT_MS = 1_000;
/** One `claim` per stream per this long, however many orphan frames arrive. */
const CLAIM_INTERVAL_MS = 250;

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
}

/**
 * A client socket of another instance, as this (the executor's) instance sees it: sending a frame
 * publishes it to the client's subject. It cannot be paused and never queues here; the endpoints'
 * windows bound what is in flight.
 */
class RemoteClientSocket implements FrameSocket {
  readyState: number = WebSocket.OPEN;
  readonly bufferedAmount = 0;
  constructor(
    readonly subject: string,
    private readonly publish: (subject: string, data: Uint8Array) => boolean,
  ) {}
  send(data: Uint8Array | string): boolean {
    return this.readyState === WebSocket.OPEN && typeof data !== 'string' && this.publish(this.subject, data);
  }
  pause(): void {}
  resume(): void {}
  close(): void {
    this.readyState = WebSocket.CLOSED;
  }
  terminate(): void {
    this.readyState = WebSocket.CLOSED;
  }
}

/**
 * The executor of a client socket here, held by another instance: sending a frame publishes it to
 * the environment's `.up` subject with the client's subject to answer to. Nothing queues here.
 */
class RemoteExecutorSocket implements ExecutorElsewhere {
  readyState: number = WebSocket.OPEN;
  readonly bufferedAmount = 0;
  constructor(
    readonly subject: string,
    /** Where the executor's frames come back: this client socket's subject. */
    readonly clientSubject: string,
    private readonly fleet: {
      publish(subject: string, data: Uint8Array, reply: string): boolean;
      streamOpened(client: ClientLink, streamId: string): void;
      clientClosed(socket: RemoteExecutorSocket, detach: boolean): void;
    },
  ) {}
  send(data: Uint8Array | string): boolean {
    return this.readyState === WebSocket.OPEN && typeof data !== 'string' && this.fleet.publish(this.subject, data, this.clientSubject);
  }
  streamOpened(client: ClientLink, streamId: string): void {
    this.fleet.streamOpened(client, streamId);
  }
  clientClosed(detach: boolean): void {
    this.readyState = WebSocket.CLOSED;
    this.fleet.clientClosed(this, detach);
  }
  // The router neither pauses nor closes an executor's socket it forwards to.
  pause(): void {}
  resume(): void {}
  close(): void {}
  terminate(): void {}
}

/**
 * One relay instance's membership in a fleet that shares routing through NATS. The instance
 * holding an executor's socket subscribes to its environment's subjects; an instance holding a
 * client socket for an environment held elsewhere publishes the client's frames there and gets
 * the executor's frames on its own client subject. The registry (NATS KV with a TTL) answers
 * "is this environment online, and where" at once.
 *
 * When an executor moves (its instance died, or its link broke and the load balancer sent it
 * elsewhere), the new holder announces a `takeover`; the old one lets go without resetting
 * anything. The streams' routes are rebuilt from either end: a client's `resume` (its socket
 * moved too) or, for a client whose socket stayed put, the executor's first frames — published as
 * orphans, which the instance holding the stream's client claims. Nothing is acknowledged by an
 * instance: whatever NATS loses, the endpoints retransmit.
 */
export class NatsFleet implements EnvironmentWatcher {
  readonly instanceId: string;
  /** Tells this process from an earlier one with the same instance id (in client subjects). */
  readonly boot = randomBytes(6).toString('base64url');
  private readonly registryTtlMs: number;
  private readonly registryReplicas: number;
  private readonly startedAt = Date.now();
  private link: FleetConnection | null = null;
  private registry: EnvironmentRegistry | null = null;
  private stopped = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private resyncing: Promise<void> | null = null;
  /** The last resync (registry reopened, entries rewritten) succeeded; a tick retries it if not. */
  private registryHealthy = false;

  private readonly held = new Map<string, HeldEnvironment>();
  /** Client sockets of other instances, by their subject. */
  private readonly remoteClients = new Map<string, ClientLink>();
  /** When each remote instance was first seen missing from the registry (for its clients' grace). */
  private readonly instanceMissingSince = new Map<string, number>();

  /** This instance's client sockets, by connection token (the last part of their subject). */
  private readonly clients = new Map<string, ClientLink>();
  /** Per environment with client sockets here: how many, and the subscription to its orphans. */
  private readonly orphanSubscriptions = new Map<string, { clients: number; subscription: Subscription | null }>();
  private readonly availableUntil = new Map<string, number>();
  private readonly lastClaimAt = new Map<string, number>();
  private nextConnection = 1;

  constructor(
    private readonly options: FleetOptions,
    private readonly router: StreamRouter,
    private readonly limits: RelayLimits,
    private readonly events: RelayEvents,
    private readonly logger: Logger,
  ) {
    this.instanceId = options.instanceId ?? defaultInstanceId();
    const invalid = validateInstanceId(this.instanceId);
    if (invalid) throw new Error(`invalid --instance-id ${JSON.stringify(this.instanceId)}: ${invalid}`);
    this.registryTtlMs = options.registryTtlMs ?? DEFAULT_REGISTRY_TTL_MS;
    if (this.registryTtlMs < 1000) throw new Error('--registry-ttl-ms must be at least 1000');
    this.registryReplicas = options.registryReplicas ?? 1;
    if (!Number.isInteger(this.registryReplicas) || this.registryReplicas < 1 || this.registryReplicas > 5) throw new Error('--registry-replicas must be 1 to 5');
    router.watcher = this;
  }

  get state(): FleetState {
    let registered = 0;
    for (const environment of this.held.values()) if (environment.revision > 0) registered++;
    return { member: true, connected: this.link?.connected ?? false, registeredEnvironments: registered, remoteClients: this.remoteClients.size };
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
    if (maxPayload < this.limits.maxFrameBytes) {
      await link.close();
      throw new Error(`NATS max_payload is ${maxPayload} bytes, smaller than a relay frame (${this.limits.maxFrameBytes}): raise max_payload in nats-server's config`);
    }
    // JetStream may still be electing its leader (a NATS cluster starting): retry for a while.
    const giveUpAt = Date.now() + REGISTRY_OPEN_WAIT_MS;
    for (;;) {
      try {
        await this.openRegistry();
        break;
      } catch (error) {
        if (error instanceof NoJetStreamError || Date.now() > giveUpAt) {
          await link.close();
          if (error instanceof NoJetStreamError) throw error;
          throw new Error(
            `cannot open the fleet registry in NATS after ${REGISTRY_OPEN_WAIT_MS / 1000} s: ${(error as Error).message}` +
              ` (is JetStream up on enough servers for --registry-replicas ${this.registryReplicas}?)`,
          );
        }
        this.logger.warn({ err: (error as Error).message }, 'fleet registry not available yet; retrying');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    link.subscribe(`${FleetSubject.clientsOf(this.instanceId, this.boot)}.*`, (msg) => this.toLocalClient(msg));
    for (const environmentId of this.held.keys()) this.subscribeHeld(environmentId);
    for (const environmentId of this.orphanSubscriptions.keys()) this.subscribeOrphans(environmentId);
    // Executors that registered while this instance waited for NATS.
    await this.refreshAll();
    this.registryHealthy = true;
    this.tickTimer = setInterval(() => void this.tick(), Math.max(250, Math.floor(this.registryTtlMs / 3)));
    this.tickTimer.unref();
    this.logger.info({ instanceId: this.instanceId }, 'joined the relay fleet');
  }

  /** Leaves the fleet: withdraws this instance's registry entries and closes the connection. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.tickTimer);
    const link = this.link;
    if (!link) return;
    if (link.connected && this.registry) {
      await Promise.allSettled([...this.held.entries()].map(([id, h]) => (h.revision > 0 ? this.registry!.withdraw(id, h.revision) : undefined)));
    }
    await link.close();
  }

  // -------------------------------------------------------------------------------------------
  // Client sockets held here

  /**
   * Whether a client may connect for this environment: held here, or held by a live instance
   * according to the registry. Rejects when the registry cannot be asked (NATS is down).
   */
  async environmentAvailable(environmentId: string): Promise<boolean> {
    if (this.router.hasLiveExecutor(environmentId)) return true;
    if ((this.availableUntil.get(environmentId) ?? 0) > Date.now()) return true;
    if (!this.registry || !this.link?.connected) throw new Error('NATS unavailable');
    const holder = await this.registry.lookup(environmentId);
    if (holder?.instance === this.instanceId) return false; // this instance's entry, its executor gone
    // The entry of an instance that died lives until its TTL, but NATS knows at once that nobody
    // subscribes to the environment any more. Without an entry (a NATS restart emptied the
    // registry moments ago, holders are rewriting it) a holder that answers is proof enough.
    const probe = await this.probeHolder(environmentId);
    const available = holder ? probe !== 'nobody' : probe === 'answered';
    if (available) this.availableUntil.set(environmentId, Date.now() + AVAILABILITY_CACHE_MS);
    return available;
  }

  /**
   * Asks NATS who holds the environment: `answered` (a holder with a live executor replied),
   * `nobody` (no subscriber), or `silent` (a subscriber that did not reply in time).
   */
  private probeHolder(environmentId: string): Promise<'answered' | 'nobody' | 'silent'> {
    return this.link!.ask(FleetSubject.control(environmentToken(environmentId)), encodeFleetControlMessage({ type: 'probe' }), PROBE_TIMEOUT_MS);
  }

  /**
   * The router's link for a client socket connected here: while another instance holds its
   * environment, the router reaches the executor through a `RemoteExecutorSocket`.
   */
  clientLink(socket: FrameSocket, environmentId: string): ClientLink {
    const connection = `c${(this.nextConnection++).toString(36)}`;
    const subject = `${FleetSubject.clientsOf(this.instanceId, this.boot)}.${connection}`;
    const executor = new RemoteExecutorSocket(FleetSubject.toExecutor(environmentToken(environmentId)), subject, {
      publish: (target, data, reply) => this.publish(target, data, reply),
      streamOpened: (client, streamId) => void this.confirmOpen(client, streamId),
      clientClosed: (_socket, detach) => {
        this.clients.delete(connection);
        if (detach) this.publishControl(environmentId, { type: 'detach', client: subject });
        this.unsubscribeOrphans(environmentId);
      },
    });
    const client = new ClientLink(socket, environmentId, { elsewhere: executor });
    this.clients.set(connection, client);
    const orphans = this.orphanSubscriptions.get(environmentId);
    if (orphans) orphans.clients += 1;
    else {
      this.orphanSubscriptions.set(environmentId, { clients: 1, subscription: null });
      this.subscribeOrphans(environmentId);
    }
    return client;
  }

  /** A new stream towards an environment held elsewhere: refused at once if nobody holds it. */
  private async confirmOpen(client: ClientLink, streamId: string): Promise<void> {
    try {
      if (await this.environmentAvailable(client.environmentId)) return;
    } catch {
      return; // NATS is down: the stream waits (and its handshake times out) rather than guessing
    }
    this.router.executorUnavailable(client, streamId);
  }

  /** An executor's frame for one of this instance's client sockets (`execrelay.client.I.B.C`). */
  private toLocalClient(msg: Msg): void {
    const client = this.clients.get(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
    if (!client) {
      this.events.frameDropped('endpoint_detached');
      return;
    }
    if (this.router.fromExecutorElsewhere(client, frameOf(msg))) this.events.fleetFrame('received', msg.data.length);
  }

  /** An executor frame without a route at its holder: claim it if its client socket is here. */
  private orphanFromFleet(environmentId: string, msg: Msg): void {
    const orphan = this.router.orphanFromElsewhere(environmentId, frameOf(msg));
    if (!orphan) return;
    this.events.fleetFrame('received', msg.data.length);
    const { header, client } = orphan;
    if (!(client?.elsewhere instanceof RemoteExecutorSocket)) return;
    const subject = client.elsewhere.clientSubject;
    const now = Date.now();
    // A reset ends the stream: nothing to claim, only to pass on.
    if (header.type !== 'reset' && now - (this.lastClaimAt.get(header.streamId) ?? 0) >= CLAIM_INTERVAL_MS) {
      this.lastClaimAt.set(header.streamId, now);
      this.publishControl(environmentId, { type: 'claim', client: subject, streamId: header.streamId });
    }
  }

  private subscribeOrphans(environmentId: string): void {
    const orphans = this.orphanSubscriptions.get(environmentId);
    if (!this.link || !orphans || orphans.subscription) return;
    const subject = FleetSubject.orphans(environmentToken(environmentId));
    orphans.subscription = this.link.subscribe(subject, (msg) => this.orphanFromFleet(environmentId, msg));
  }

  private unsubscribeOrphans(environmentId: string): void {
    const orphans = this.orphanSubscriptions.get(environmentId);
    if (!orphans || --orphans.clients > 0) return;
    orphans.subscription?.unsubscribe();
    this.orphanSubscriptions.delete(environmentId);
  }

  // -------------------------------------------------------------------------------------------
  // Executors held here (EnvironmentWatcher)

  linkUp(environmentId: string, registeredAt: number): Promise<void> {
    let held = this.held.get(environmentId);
    if (!held) {
      held = { token: environmentToken(environmentId), subscriptions: [], revision: 0, registeredAt: 0, announcing: false, registering: null };
      this.held.set(environmentId, held);
      this.subscribeHeld(environmentId);
    }
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
    if (revision > 0 && this.registry && this.link?.connected) void this.registry.withdraw(environmentId, revision);
  }

  forgotten(environmentId: string): void {
    const held = this.held.get(environmentId);
    if (!held) return;
    this.held.delete(environmentId);
    for (const subscription of held.subscriptions) subscription.unsubscribe();
    if (held.revision > 0 && this.registry && this.link?.connected) void this.registry.withdraw(environmentId, held.revision);
    for (const [subject, link] of this.remoteClients) {
      if (link.environmentId === environmentId) this.remoteClients.delete(subject);
    }
  }

  orphanFrame(environmentId: string, data: Buffer): void {
    if (!this.publish(FleetSubject.orphans(environmentToken(environmentId)), data)) this.events.frameDropped('fleet_unavailable');
  }

  private subscribeHeld(environmentId: string): void {
    const held = this.held.get(environmentId);
    if (!this.link || !held || held.subscriptions.length > 0) return;
    held.subscriptions.push(
      this.link.subscribe(FleetSubject.toExecutor(held.token), (msg) => this.fromRemoteClient(environmentId, msg)),
      this.link.subscribe(FleetSubject.control(held.token), (msg) => this.control(environmentId, msg)),
    );
  }

  /** A client frame published by another instance for an executor held here. */
  private fromRemoteClient(environmentId: string, msg: Msg): void {
    const link = msg.reply ? this.remoteClient(msg.reply, environmentId) : null;
    if (!link) {
      this.events.frameDropped('invalid');
      return;
    }
    this.events.fleetFrame('received', msg.data.length);
    this.router.fromClient(link, frameOf(msg));
  }

  private remoteClient(subject: string, environmentId: string): ClientLink | null {
    const existing = this.remoteClients.get(subject);
    if (existing && existing.socket.readyState === WebSocket.OPEN && existing.environmentId === environmentId) return existing;
    if (!parseClientSubject(subject)) return null;
    const socket = new RemoteClientSocket(subject, (target, data) => this.publish(target, data));
    const link = new ClientLink(socket, environmentId, { remote: true });
    this.remoteClients.set(subject, link);
    return link;
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
        if (msg.reply && this.router.hasLiveExecutor(environmentId)) msg.respond(new Uint8Array(0));
        return;
      case 'takeover': {
        if (message.instance === this.instanceId) return;
        if (held.registering) {
          void held.registering.then(() => this.control(environmentId, msg));
          return;
        }
        const mine = { registeredAt: held.registeredAt, instance: this.instanceId };
        if (this.router.hasLiveExecutor(environmentId) && held.registeredAt > 0 && isNewerRegistration(mine, message)) {
          // This registration is the newer one: tell the other instance to let go.
          this.publishControl(environmentId, { type: 'takeover', ...mine });
          return;
        }
        this.logger.info({ holder: message.instance }, 'environment taken over by another relay instance');
        held.revision = 0; // the entry is the other instance's now: do not withdraw it
        this.router.releaseEnvironment(environmentId);
        return;
      }
      case 'detach': {
        const link = this.remoteClients.get(message.client);
        if (!link) return;
        this.remoteClients.delete(message.client);
        this.router.clientClosed(link);
        link.socket.close();
        return;
      }
      case 'claim': {
        const link = this.remoteClient(message.client, environmentId);
        if (link) this.router.claimStream(link, message.streamId);
        return;
      }
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
    if (!this.registry || !this.link?.connected) return;
    try {
      const { revision, registeredAt } = await this.registry.register(environmentId, now);
      if (this.held.get(environmentId) !== held || !this.router.hasLiveExecutor(environmentId)) return;
      held.revision = revision;
      held.registeredAt = registeredAt;
      this.publishControl(environmentId, { type: 'takeover', instance: this.instanceId, registeredAt });
    } catch (error) {
      this.registryError(error);
    }
  }

  /**
   * Keeps a held environment's entry alive. When another instance wrote it since (or recreated it
   * first after a NATS restart), the older registration lets go: this one, or the other — then this
   * one rewrites the entry and announces a takeover.
   */
  private async refresh(environmentId: string, held: HeldEnvironment): Promise<void> {
    if (!this.registry || held.announcing || held.registering || !this.router.hasLiveExecutor(environmentId)) return;
    if (held.registeredAt === 0) {
      // The registration was never written (NATS was down when the executor came): write it now.
      void this.beginRegistration(environmentId, held, Date.now());
      return;
    }
    held.announcing = true;
    try {
      const result = await this.registry.refresh(environmentId, held.registeredAt, held.revision);
      if (this.held.get(environmentId) !== held || !this.router.hasLiveExecutor(environmentId)) return;
      const mine = { registeredAt: held.registeredAt, instance: this.instanceId };
      if (result.held) {
        held.revision = result.revision;
        // A recreated entry (expired, or the bucket was lost with a NATS restart): say so again.
        if (result.recreated) this.publishControl(environmentId, { type: 'takeover', ...mine });
      } else if (isNewerRegistration(mine, result.holder)) {
        held.revision = await this.registry.rewrite(environmentId, held.registeredAt);
        this.publishControl(environmentId, { type: 'takeover', ...mine });
      } else {
        this.logger.warn({ holder: result.holder.instance }, 'another relay instance holds a newer registration of this environment; letting go');
        held.revision = 0;
        this.router.releaseEnvironment(environmentId);
      }
    } catch (error) {
      this.registryError(error);
    } finally {
      held.announcing = false;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Connection, registry upkeep

  /** After (re)connecting: reopen the registry (lost with a NATS restart) and re-register. */
  private resync(): Promise<void> {
    this.resyncing ??= (async () => {
      try {
        if (!this.link?.connected) return;
        await this.openRegistry();
        await this.refreshAll();
        this.registryHealthy = true;
      } catch (error) {
        this.registryHealthy = false;
        this.registryError(error);
      } finally {
        this.resyncing = null;
      }
    })();
    return this.resyncing;
  }

  /** Opens (creating if needed) the registry bucket and says this instance is alive. */
  private async openRegistry(): Promise<void> {
    this.registry = await EnvironmentRegistry.open(this.link!.nats, this.instanceId, this.boot, this.registryTtlMs, this.registryReplicas);
    await this.registry.heartbeat(this.startedAt);
  }

  /** Refreshes (or writes) the entry of every environment held here. */
  private async refreshAll(): Promise<void> {
    await Promise.all([...this.held.entries()].map(([id, held]) => this.refresh(id, held)));
  }

  private async tick(): Promise<void> {
    if (this.stopped || !this.link?.connected || !this.registry) return;
    if (!this.registryHealthy) {
      await this.resync();
      return;
    }
    try {
      await this.registry.heartbeat(this.startedAt);
    } catch (error) {
      // The bucket may be gone (deleted, or lost by a JetStream server): reopen it next tick.
      this.registryHealthy = false;
      this.registryError(error);
      return;
    }
    await this.refreshAll();
    await this.sweepRemoteClients();
    const now = Date.now();
    for (const [id, until] of this.availableUntil) if (until <= now) this.availableUntil.delete(id);
    for (const [id, at] of this.lastClaimAt) if (now - at > 10 * CLAIM_INTERVAL_MS) this.lastClaimAt.delete(id);
  }

  /**
   * Forgets remote client sockets that carry nothing; detaches those of an instance that is no
   * longer alive (its process died without saying so), so their streams get the client grace.
   */
  private async sweepRemoteClients(): Promise<void> {
    const byInstance = new Map<string, { boot: string; subject: string; link: ClientLink }[]>();
    for (const [subject, link] of this.remoteClients) {
      if (link.socket.readyState !== WebSocket.OPEN || link.streams.size === 0) {
        this.remoteClients.delete(subject);
        continue;
      }
      const parsed = parseClientSubject(subject)!;
      const list = byInstance.get(parsed.instanceId) ?? [];
      list.push({ boot: parsed.boot, subject, link });
      byInstance.set(parsed.instanceId, list);
    }
    const now = Date.now();
    for (const instanceId of this.instanceMissingSince.keys()) if (!byInstance.has(instanceId)) this.instanceMissingSince.delete(instanceId);
    for (const [instanceId, links] of byInstance) {
      let liveBoot: string | null;
      try {
        liveBoot = await this.registry!.instanceBoot(instanceId);
      } catch {
        return;
      }
      const dead = links.filter((entry) => entry.boot !== liveBoot);
      if (dead.length === 0) {
        this.instanceMissingSince.delete(instanceId);
        continue;
      }
      // An instance's entry may be missing for a moment after a NATS restart: wait one TTL.
      const since = Math.max(this.instanceMissingSince.get(instanceId) ?? now, this.link!.connectedSince);
      this.instanceMissingSince.set(instanceId, since);
      if (now - since < this.registryTtlMs) continue;
      for (const { subject, link } of dead) {
        this.remoteClients.delete(subject);
        this.router.clientClosed(link);
        link.socket.close();
      }
      this.logger.info({ instance: instanceId, clients: dead.length }, 'relay instance gone; its client sockets get their grace');
    }
  }

  private registryError(error: unknown): void {
    this.events.fleetError('registry');
    this.logger.warn({ err: (error as Error).message }, 'relay registry operation failed');
  }

  /** A relay frame to another instance; false (counted by the caller) when it cannot be sent. */
  private publish(subject: string, data: Uint8Array, reply?: string): boolean {
    return this.link?.publishFrame(subject, data, reply) ?? false;
  }

  private publishControl(environmentId: string, message: FleetControlMessage): void {
    this.link?.publish(FleetSubject.control(environmentToken(environmentId)), encodeFleetControlMessage(message));
  }
}

/** A NATS message's payload as the router takes it (no copy). */
function frameOf(msg: Msg): Buffer {
  return Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
}

function defaultInstanceId(): string {
  const host = hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 48) || 'relay';
  return `${host}-${randomBytes(3).toString('hex')}`;
}
