import { connect, NoRespondersError, RequestError, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import type { Logger } from '../src/logging/logger.js';
import { FleetSubject, encodeFleetControlMessage, environmentToken, parseFleetJson, type FleetControlMessage } from './fleet-wire.js';
import type { RelayEvents } from './relay-events.js';

/**
 * One relay instance's NATS connection: connects (waiting for NATS if it is not up yet),
 * reconnects for ever, and knows whether it is connected now — while it is not, nothing is
 * published (nats.js would buffer without bound) and the caller counts the frame as dropped.
 * Frames published and received, and every NATS problem, are reported to the relay's events.
 */
export class FleetConnection {
  private connectedNow = true;
  private connectedAt = Date.now();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly events: RelayEvents,
    private readonly logger: Logger,
    private readonly onReconnect: () => void,
  ) {
    void this.watchStatus();
  }

  /** Connects to `natsUrl` (see `parseNatsUrl`); resolves once connected. */
  static async open(natsUrl: string, name: string, events: RelayEvents, logger: Logger, onReconnect: () => void): Promise<FleetConnection> {
    const { servers, user, pass, token } = parseNatsUrl(natsUrl);
    logger.info({ servers }, 'connecting to NATS');
    const nc = await connect({
      servers,
      ...(user !== undefined ? { user } : {}),
      ...(pass !== undefined ? { pass } : {}),
      ...(token !== undefined ? { token } : {}),
      name,
      // An instance never needs its own messages: it routes its own endpoints' frames locally.
      noEcho: true,
      waitOnFirstConnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 250,
      pingInterval: 10_000,
      maxPingOut: 3,
    });
    return FleetConnection.over(nc, events, logger, onReconnect);
  }

  /** An established NATS connection (what `open` dials) as a fleet connection. */
  static over(nc: NatsConnection, events: RelayEvents, logger: Logger, onReconnect: () => void): FleetConnection {
    return new FleetConnection(nc, events, logger, onReconnect);
  }

  /** The NATS connection itself (for the registry's KV bucket). */
  get nats(): NatsConnection {
    return this.nc;
  }

  get connected(): boolean {
    return this.connectedNow;
  }

  /** When the connection was last (re)established. */
  get connectedSince(): number {
    return this.connectedAt;
  }

  /** The server's largest message. */
  get maxPayload(): number {
    return this.nc.info?.max_payload ?? 0;
  }

  /** Publishes a relay frame; false (nothing sent) while disconnected or if NATS refuses it. */
  publishFrame(subject: string, data: Uint8Array, reply?: string): boolean {
    if (!this.publish(subject, data, reply)) return false;
    this.events.fleetFrame('published', data.length);
    return true;
  }

  /** Publishes a control message (not counted as a frame). */
  publish(subject: string, data: Uint8Array, reply?: string): boolean {
    if (!this.connectedNow) return false;
    try {
      this.nc.publish(subject, data, reply ? { reply } : undefined);
      return true;
    } catch {
      this.events.fleetError('publish');
      return false;
    }
  }

  /** Publishes a control message for the instance holding the environment (`execrelay.env.T.ctl`). */
  publishControl(environmentId: string, message: FleetControlMessage): boolean {
    return this.publish(FleetSubject.control(environmentToken(environmentId)), encodeFleetControlMessage(message));
  }

  /** Subscribes `handler` to `subject`; a subscription error is counted and logged. */
  subscribe(subject: string, handler: (msg: Msg) => void): Subscription {
    return this.nc.subscribe(subject, {
      callback: (error, msg) => {
        if (!error) return handler(msg);
        this.events.fleetError('connection');
        this.logger.warn({ err: error.message }, 'NATS subscription failed');
      },
    });
  }

  /**
   * A request that only asks whether anyone listens: `answered`, `nobody` (NATS answers "no
   * responders" at once when nothing subscribes) or `silent` (a subscriber that did not reply).
   */
  async ask(subject: string, data: Uint8Array, timeoutMs: number): Promise<'answered' | 'nobody' | 'silent'> {
    try {
      await this.nc.request(subject, data, { timeout: timeoutMs });
      return 'answered';
    } catch (error) {
      if (error instanceof NoRespondersError || (error instanceof RequestError && error.isNoResponders())) return 'nobody';
      return 'silent';
    }
  }

  /** A request answered by one subscriber: its answer, or null (nobody listens, no answer in time, or disconnected). */
  async request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array | null> {
    if (!this.connectedNow) return null;
    try {
      return (await this.nc.request(subject, data, { timeout: timeoutMs })).data;
    } catch {
      return null;
    }
  }

  /**
   * Asks the one instance serving `subject` (`serveJson`): `body` as JSON, its answer parsed with
   * `answerSchema`; null when there is none — nobody listens, no answer within `timeoutMs`,
   * disconnected — or it is not one (also counted as a `control` fleet error). The caller decides
   * what no answer means (the fleet's questions fail closed).
   */
  async requestJson<A>(subject: string, body: unknown, answerSchema: FleetJsonSchema<A>, timeoutMs: number): Promise<A | null> {
    const reply = await this.request(subject, Buffer.from(JSON.stringify(body), 'utf8'), timeoutMs);
    if (!reply) return null;
    const answer = parseFleetJson(answerSchema, reply);
    if (!answer) this.events.fleetError('control');
    return answer;
  }

  /**
   * Serves `requestJson` on `subject`: each request parsed with `requestSchema`, answered with
   * `answer(request)` as JSON. A request that is not one, or that asks for no answer (no reply
   * subject), is counted as a `control` fleet error and not answered.
   */
  serveJson<Q, A>(subject: string, requestSchema: FleetJsonSchema<Q>, answer: (request: Q) => A): Subscription {
    return this.subscribe(subject, (msg) => {
      const request = parseFleetJson(requestSchema, msg.data);
      if (!request || !msg.reply) {
        this.events.fleetError('control');
        return;
      }
      msg.respond(Buffer.from(JSON.stringify(answer(request)), 'utf8'));
    });
  }

  async close(): Promise<void> {
    this.connectedNow = false;
    await this.nc.close().catch(() => undefined);
  }

  private async watchStatus(): Promise<void> {
    for await (const status of this.nc.status()) {
      switch (status.type) {
        case 'disconnect':
          this.connectedNow = false;
          this.events.fleetError('connection');
          this.logger.warn('lost the NATS connection; frames between instances are dropped until it is back');
          break;
        case 'reconnect':
          this.connectedNow = true;
          this.connectedAt = Date.now();
          this.events.fleetReconnected();
          this.logger.info('NATS connection back');
          this.onReconnect();
          break;
        case 'error':
        case 'slowConsumer':
          this.events.fleetError('connection');
          this.logger.warn({ status: status.type }, 'NATS reported a problem');
          break;
        case 'close':
          this.connectedNow = false;
          break;
        default:
          break;
      }
    }
  }
}

/** What `requestJson` and `serveJson` parse fleet JSON with (a zod schema of `fleet-wire.ts`). */
export type FleetJsonSchema<T> = Parameters<typeof parseFleetJson<T>>[0];

/** `nats://user:pass@host:4222,nats://other:4222` → servers and credentials (taken from the first URL that has them). */
export function parseNatsUrl(value: string): { servers: string[]; user?: string; pass?: string; token?: string } {
  const servers: string[] = [];
  let user: string | undefined;
  let pass: string | undefined;
  let token: string | undefined;
  for (const part of value.split(',').map((s) => s.trim()).filter(Boolean)) {
    let url: URL;
    try {
      url = new URL(part.includes('://') ? part : `nats://${part}`);
    } catch {
      throw new Error(`invalid --nats URL ${JSON.stringify(part)}: expected nats://HOST:PORT`);
    }
    if (!['nats:', 'tls:'].includes(url.protocol) || !url.hostname) throw new Error(`invalid --nats URL ${JSON.stringify(part)}: expected nats://HOST:PORT`);
    if (url.username && user === undefined && token === undefined) {
      // nats://user:password@host, or nats://token@host
      if (url.password) {
        user = decodeURIComponent(url.username);
        pass = decodeURIComponent(url.password);
      } else {
        token = decodeURIComponent(url.username);
      }
    }
    servers.push(`${url.protocol}//${url.host}`);
  }
  if (servers.length === 0) throw new Error('--nats needs at least one nats://HOST:PORT');
  return { servers, ...(user !== undefined ? { user, pass } : {}), ...(token !== undefined ? { token } : {}) };
}
