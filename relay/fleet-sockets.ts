import type { Msg, Subscription } from '@nats-io/transport-node';
import WebSocket from 'ws';
import type { Logger } from '../src/logging/logger.js';
import type { FleetConnection } from './fleet-connection.js';
import { FleetSubject, environmentToken, parseClientSubject } from './fleet-wire.js';
import type { RelayEvents } from './relay-events.js';
import { ClientLink, type ExecutorElsewhere, type FrameSocket, type StreamRouter } from './stream-router.js';
import { CodexHarnessLink, type CodexExecutorElsewhere, type CodexRendezvousRouter } from './codex-rendezvous-router.js';

/** Which router an environment's frames belong to: execrelay's own, or the codex rendezvous. */
export type ExecutorKind = 'native' | 'codex';

/** A client socket as a router sees it: an execrelay client's, or a codex harness's. */
type AnyClientLink = ClientLink | CodexHarnessLink;

/** One `claim` per stream per this long, however many orphan frames arrive. */
const CLAIM_INTERVAL_MS = 250;

/**
 * A client socket of another instance, as this (the executor's) instance sees it: sending a frame
 * publishes it to the client's subject. It cannot be paused and never queues here; the endpoints'
 * windows bound what is in flight.
 */
export class RemoteClientSocket implements FrameSocket {
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
 * the environment's `.up` subject with the client socket's subject to answer to. Nothing queues here.
 * The same for both kinds of executor (an execrelay client's or a codex harness's socket).
 */
export class RemoteExecutorSocket implements ExecutorElsewhere, CodexExecutorElsewhere {
  readyState: number = WebSocket.OPEN;
  readonly bufferedAmount = 0;
  constructor(
    readonly subject: string,
    /** Where the executor's frames come back: this client socket's subject. */
    readonly clientSubject: string,
    private readonly fleet: {
      publish(subject: string, data: Uint8Array, reply: string): boolean;
      streamOpened(streamId: string): void;
      clientClosed(detach: boolean): void;
    },
  ) {}
  send(data: Uint8Array | string): boolean {
    return this.readyState === WebSocket.OPEN && typeof data !== 'string' && this.fleet.publish(this.subject, data, this.clientSubject);
  }
  streamOpened(_client: AnyClientLink, streamId: string): void {
    this.fleet.streamOpened(streamId);
  }
  clientClosed(detach: boolean): void {
    this.readyState = WebSocket.CLOSED;
    this.fleet.clientClosed(detach);
  }
  // The router neither pauses nor closes an executor's socket it forwards to.
  pause(): void {}
  resume(): void {}
  close(): void {}
  terminate(): void {}
}

/**
 * The endpoints of other instances as sockets of this one, and the frames between them and the
 * router (which does all routing and checks every limit):
 * - for an executor held here, one `RemoteClientSocket` per client subject that sends to it
 *   (`execrelay.env.T.up`); `detach` (or its instance found dead) closes it, `claim` binds it to a
 *   stream;
 * - for a client socket here, a `RemoteExecutorSocket`; the executor's frames come back on the
 *   client socket's subject, and its environment's orphans are claimed for the client socket that
 *   carries the stream.
 *
 * Codex harness sockets and executors (`CodexRendezvousRouter`) use the same subjects and the
 * same remote sockets: an environment a codex executor holds here takes the `.up` frames into the
 * codex router, and a harness socket here reaches its executor elsewhere through a
 * `RemoteExecutorSocket`. Codex streams do not move between sockets, so they have no orphans or
 * claims; `detach` and the dead-instance sweep apply to them as to execrelay's.
 */
export class FleetSockets {
  /** Client sockets of other instances, by their subject. */
  private readonly remoteClients = new Map<string, AnyClientLink>();
  /** When each remote instance was first seen missing from the registry (for its clients' grace). */
  private readonly instanceMissingSince = new Map<string, number>();
  /** This instance's client sockets, by connection token (the last part of their subject). */
  private readonly clients = new Map<string, AnyClientLink>();
  /** Per environment with client sockets here: how many, and the subscription to its orphans. */
  private readonly orphans = new Map<string, { clients: number; subscription: Subscription | null }>();
  private readonly lastClaimAt = new Map<string, number>();
  private nextConnection = 1;

  constructor(
    private readonly instanceId: string,
    private readonly boot: string,
    /** The NATS connection, once there is one. */
    private readonly connection: () => FleetConnection | null,
    private readonly router: StreamRouter,
    private readonly events: RelayEvents,
    private readonly logger: Logger,
    /** Whether some instance holds the environment with that kind of executor; rejects when that cannot be told (NATS down). */
    private readonly environmentAvailable: (environmentId: string, kind: ExecutorKind) => Promise<boolean>,
    /** The codex rendezvous router (null: codex frames are not routed through the fleet). */
    private readonly codexRouter: CodexRendezvousRouter | null = null,
  ) {}

  /** Client sockets of other instances this instance routes streams for. */
  get remoteClientCount(): number {
    return this.remoteClients.size;
  }

  /** Joined the fleet: frames for this instance's client sockets, and their environments' orphans. */
  subscribe(): void {
    this.connection()!.subscribe(`${FleetSubject.clientsOf(this.instanceId, this.boot)}.*.*`, (msg) => this.toLocalClient(msg));
    for (const environmentId of this.orphans.keys()) this.subscribeOrphans(environmentId);
  }

  // -------------------------------------------------------------------------------------------
  // Client sockets held here

  /**
   * The router's link for a client socket connected here: while another instance holds its
   * environment, the router reaches the executor through a `RemoteExecutorSocket`.
   */
  clientLink(socket: FrameSocket, environmentId: string, credentialId: string): ClientLink {
    let client: ClientLink | undefined;
    const executor = this.executorElsewhere(environmentId, credentialId, {
      opened: (streamId) => void this.confirmOpen(environmentId, 'native', () => this.router.executorUnavailable(client!, streamId)),
      closed: () => this.unsubscribeOrphans(environmentId),
    });
    client = new ClientLink(socket, environmentId, credentialId, { elsewhere: executor.socket });
    this.clients.set(executor.connection, client);
    const orphans = this.orphans.get(environmentId);
    if (orphans) {
      orphans.clients += 1;
    } else {
      this.orphans.set(environmentId, { clients: 1, subscription: null });
      this.subscribeOrphans(environmentId);
    }
    return client;
  }

  /**
   * The codex router's link for a harness socket connected here whose executor another instance
   * holds (the caller checked the registration in the registry): its frames go to that instance.
   */
  harnessLink(socket: FrameSocket, environmentId: string, registrationId: string, credentialId: string): CodexHarnessLink {
    const codex = this.codexRouter!;
    let link: CodexHarnessLink | undefined;
    const executor = this.executorElsewhere(environmentId, credentialId, {
      opened: (streamId) => void this.confirmOpen(environmentId, 'codex', () => codex.executorUnavailable(link!, streamId)),
      closed: () => undefined,
    });
    link = codex.harnessConnected(socket, environmentId, registrationId, credentialId, executor.socket);
    this.clients.set(executor.connection, link);
    return link;
  }

  /** A client socket's subject and its way to the executor another instance holds. */
  private executorElsewhere(
    environmentId: string,
    credentialId: string,
    hooks: { opened(streamId: string): void; closed(): void },
  ): { connection: string; socket: RemoteExecutorSocket } {
    const connection = `c${(this.nextConnection++).toString(36)}`;
    const subject = FleetSubject.client(this.instanceId, this.boot, credentialId, connection);
    const socket = new RemoteExecutorSocket(FleetSubject.toExecutor(environmentToken(environmentId)), subject, {
      publish: (target, data, reply) => this.publish(target, data, reply),
      streamOpened: (streamId) => hooks.opened(streamId),
      clientClosed: (detach) => {
        this.clients.delete(connection);
        if (detach) this.connection()?.publishControl(environmentId, { type: 'detach', client: subject });
        hooks.closed();
      },
    });
    return { connection, socket };
  }

  /** A new stream towards an environment held elsewhere: refused (`refuse`) at once if nobody holds it. */
  private async confirmOpen(environmentId: string, kind: ExecutorKind, refuse: () => void): Promise<void> {
    try {
      if (await this.environmentAvailable(environmentId, kind)) return;
    } catch {
      return; // NATS is down: the stream waits (and its handshake times out) rather than guessing
    }
    refuse();
  }

  /** An executor's frame for one of this instance's client sockets (`execrelay.client.I.B.C`). */
  private toLocalClient(msg: Msg): void {
    const client = this.clients.get(msg.subject.slice(msg.subject.lastIndexOf('.') + 1));
    if (!client) {
      this.events.frameDropped('endpoint_detached');
      return;
    }
    const delivered = client instanceof CodexHarnessLink ? this.codexRouter!.fromExecutorElsewhere(client, frameOf(msg)) : this.router.fromExecutorElsewhere(client, frameOf(msg));
    if (delivered) this.events.fleetFrame('received', msg.data.length);
  }

  /** An executor frame without a route at its holder: claim it if its client socket is here. */
  private orphanFromFleet(environmentId: string, msg: Msg): void {
    const orphan = this.router.orphanFromElsewhere(environmentId, frameOf(msg));
    if (!orphan) return;
    this.events.fleetFrame('received', msg.data.length);
    const { header, client } = orphan;
    if (!(client?.elsewhere instanceof RemoteExecutorSocket)) return;
    const now = Date.now();
    // A reset ends the stream: nothing to claim, only to pass on.
    if (header.type !== 'reset' && now - (this.lastClaimAt.get(header.streamId) ?? 0) >= CLAIM_INTERVAL_MS) {
      this.lastClaimAt.set(header.streamId, now);
      this.connection()?.publishControl(environmentId, { type: 'claim', client: client.elsewhere.clientSubject, streamId: header.streamId });
    }
  }

  private subscribeOrphans(environmentId: string): void {
    const orphans = this.orphans.get(environmentId);
    const link = this.connection();
    if (!link || !orphans || orphans.subscription) return;
    orphans.subscription = link.subscribe(FleetSubject.orphans(environmentToken(environmentId)), (msg) => this.orphanFromFleet(environmentId, msg));
  }

  private unsubscribeOrphans(environmentId: string): void {
    const orphans = this.orphans.get(environmentId);
    if (!orphans || --orphans.clients > 0) return;
    orphans.subscription?.unsubscribe();
    this.orphans.delete(environmentId);
  }

  // -------------------------------------------------------------------------------------------
  // Client sockets of other instances (for executors held here)

  /** A client frame published by another instance for an executor held here (`execrelay.env.T.up`). */
  fromRemoteClient(environmentId: string, msg: Msg): void {
    // A codex executor held here takes codex relay frames; otherwise the environment is an execrelay agent's.
    const kind: ExecutorKind = this.codexRouter?.hasLiveExecutor(environmentId) ? 'codex' : 'native';
    const link = msg.reply ? this.remoteClient(msg.reply, environmentId, kind) : null;
    if (!link) {
      this.events.frameDropped(kind === 'codex' && msg.reply ? 'no_route' : 'invalid');
      return;
    }
    this.events.fleetFrame('received', msg.data.length);
    if (link instanceof CodexHarnessLink) this.codexRouter!.fromHarness(link, frameOf(msg));
    else this.router.fromClient(link, frameOf(msg));
  }

  /** `detach`: the client socket behind `subject` closed; its streams wait for the client's grace (codex: are reset). */
  detach(subject: string): void {
    const link = this.remoteClients.get(subject);
    if (!link) return;
    this.remoteClients.delete(subject);
    this.closeRemote(link);
  }

  /** `claim`: the client socket behind `subject` carries the stream (answering an orphan frame). */
  claim(environmentId: string, subject: string, streamId: string): void {
    const link = this.remoteClient(subject, environmentId, 'native');
    if (link instanceof ClientLink) this.router.claimStream(link, streamId);
  }

  /** An executor frame no client socket here carries: for the instance holding the stream's client. */
  publishOrphan(environmentId: string, data: Buffer): void {
    if (!this.publish(FleetSubject.orphans(environmentToken(environmentId)), data)) this.events.frameDropped('fleet_unavailable');
  }

  /** The router forgot an environment held here: its remote client sockets go with it. */
  forgetEnvironment(environmentId: string): void {
    for (const [subject, link] of this.remoteClients) {
      if (link.environmentId !== environmentId) continue;
      this.remoteClients.delete(subject);
      if (link instanceof CodexHarnessLink) this.codexRouter?.harnessClosed(link);
    }
  }

  /** The link of a client socket of another instance (made on its first frame); null for a bad subject, or no codex executor here. */
  private remoteClient(subject: string, environmentId: string, kind: ExecutorKind): AnyClientLink | null {
    const existing = this.remoteClients.get(subject);
    if (existing && existing.socket.readyState === WebSocket.OPEN && existing.environmentId === environmentId && (existing instanceof CodexHarnessLink) === (kind === 'codex')) return existing;
    if (existing) this.closeRemote(existing);
    const parsed = parseClientSubject(subject);
    if (!parsed) return null;
    const socket = new RemoteClientSocket(subject, (target, data) => this.publish(target, data));
    const link = kind === 'codex' ? this.codexRouter!.remoteHarness(socket, environmentId, parsed.credentialId) : new ClientLink(socket, environmentId, parsed.credentialId, { remote: true });
    if (!link) return null;
    this.remoteClients.set(subject, link);
    return link;
  }

  /** A client socket of another instance is gone: its router hears it (execrelay's streams get their grace, codex's are reset). */
  private closeRemote(link: AnyClientLink): void {
    if (link instanceof CodexHarnessLink) this.codexRouter?.harnessClosed(link);
    else this.router.clientClosed(link);
    link.socket.close();
  }

  /**
   * Forgets remote client sockets that carry nothing; detaches those of an instance that is no
   * longer alive (its process died without saying so), so their streams get the client grace.
   * `instanceBoot` tells the boot of an instance's live process (null: none); `graceMs` is how long
   * an instance may be missing (a NATS restart emptied the registry) before it counts as dead.
   */
  async sweepRemoteClients(instanceBoot: (instanceId: string) => Promise<string | null>, graceMs: number): Promise<void> {
    const byInstance = new Map<string, { boot: string; subject: string; link: AnyClientLink }[]>();
    for (const [subject, link] of this.remoteClients) {
      if (link.socket.readyState !== WebSocket.OPEN || link.streams.size === 0) {
        this.remoteClients.delete(subject);
        if (link instanceof CodexHarnessLink) this.codexRouter?.harnessClosed(link);
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
        liveBoot = await instanceBoot(instanceId);
      } catch {
        return;
      }
      const dead = links.filter((entry) => entry.boot !== liveBoot);
      if (dead.length === 0) {
        this.instanceMissingSince.delete(instanceId);
        continue;
      }
      // An instance's entry may be missing for a moment after a NATS restart: wait one TTL.
      const since = Math.max(this.instanceMissingSince.get(instanceId) ?? now, this.connection()!.connectedSince);
      this.instanceMissingSince.set(instanceId, since);
      if (now - since < graceMs) continue;
      for (const { subject, link } of dead) {
        this.remoteClients.delete(subject);
        this.closeRemote(link);
      }
      this.logger.info({ instance: instanceId, clients: dead.length }, 'relay instance gone; its client sockets get their grace');
    }
  }

  /**
   * Resets the streams of codex harness sockets here whose executor no instance holds any more
   * (its instance died: NATS knows at once that nobody listens). Codex streams cannot wait for
   * their executor to come back, so the harness hears it now instead of waiting in silence.
   */
  async sweepCodexHarnesses(): Promise<void> {
    const byEnvironment = new Map<string, CodexHarnessLink[]>();
    for (const link of this.clients.values()) {
      if (!(link instanceof CodexHarnessLink) || link.streams.size === 0) continue;
      const links = byEnvironment.get(link.environmentId) ?? [];
      links.push(link);
      byEnvironment.set(link.environmentId, links);
    }
    for (const [environmentId, links] of byEnvironment) {
      try {
        if (await this.environmentAvailable(environmentId, 'codex')) continue;
      } catch {
        continue; // NATS is down: cannot tell; the streams wait
      }
      for (const link of links) for (const streamId of [...link.streams]) this.codexRouter?.executorUnavailable(link, streamId);
    }
  }

  /** Forgets claim times long past. */
  prune(now: number): void {
    for (const [id, at] of this.lastClaimAt) if (now - at > 10 * CLAIM_INTERVAL_MS) this.lastClaimAt.delete(id);
  }

  /** A relay frame to another instance; false (counted by the caller) when it cannot be sent. */
  private publish(subject: string, data: Uint8Array, reply?: string): boolean {
    return this.connection()?.publishFrame(subject, data, reply) ?? false;
  }
}

/** A NATS message's payload as the router takes it (no copy). */
function frameOf(msg: Msg): Buffer {
  return Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength);
}
