// Delivers committed samples to WebSocket subscribers on every instance. The
// ingesting instance delivers to its own clients directly (no Redis round
// trip, and it keeps working while Redis is down) and publishes each batch
// ONCE on a Redis channel; the other instances deliver what they receive.
// A lone instance (PUBLISH reaches no subscriber but its own) stops building
// and publishing those messages until another instance announces itself:
// every instance says "hello" on the channel when its subscription is ready
// and every PRESENCE_INTERVAL_MS. On Redis Cluster PUBLISH counts only the
// receivers on one node, so there it always publishes.
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { KEY_PREFIX } from '../cache/cache-keys';
import type { Sample } from '../ingestion/payload-parser';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { RedisConnection } from '../redis/redis-connection';
import type { ClientConnection } from './client-connection';
import { frame, type SampleEvent, type StatusEvent } from './ws-protocol';

export const FANOUT_CHANNEL = `${KEY_PREFIX}fanout`;
const FLUSH_INTERVAL_MS = 50;
const PRESENCE_INTERVAL_MS = 5000;
const HELLO = 'hello';

/** Groups a batch's samples into one event per (device, timestamp). */
export function toSampleEvents(samples: readonly Sample[]): SampleEvent[] {
  const byPoint = new Map<string, SampleEvent>();
  for (const s of samples) {
    const key = `${s.deviceId}\u0000${s.ts}`;
    let event = byPoint.get(key);
    if (!event) byPoint.set(key, (event = { deviceId: s.deviceId, ts: new Date(s.ts).toISOString(), metrics: {} }));
    event.metrics[s.metric] = s.value;
  }
  return [...byPoint.values()];
}

function isStatusMessage(value: unknown): value is { status: StatusEvent } {
  const status = (value as { status?: Partial<StatusEvent> } | null)?.status;
  return typeof status === 'object' && status !== null && typeof status.deviceId === 'string' && typeof status.status === 'string';
}

@Injectable()
export class FanoutService implements OnApplicationShutdown {
  private readonly logger = new Logger('Fanout');
  private readonly byDevice = new Map<string, Set<ClientConnection>>();
  private readonly clients = new Set<ClientConnection>();
  private subscriber: Redis | Cluster | undefined;
  /**
   * Its own connection, with a timeout far above the cache's 80 ms: a publish
   * that is merely slow on a busy machine must not count as failed, and one
   * timed-out cache read must not stop live delivery to other instances.
   */
  private publisher: Redis | Cluster | undefined;
  private publishing = true;
  /** False once a PUBLISH reached no other instance; true again when one says hello. */
  private othersListening = true;
  private selfSubscribed = false;
  private readonly flushTimer: NodeJS.Timeout;
  private presenceTimer: NodeJS.Timeout | undefined;
  private readonly statusListeners: Array<(event: StatusEvent) => void> = [];
  /** Counts (re)subscriptions: a listener that saw it change may have missed messages in between. */
  private subscriptions = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisConnection,
    private readonly metrics: TelemetryMetrics,
  ) {
    this.flushTimer = setInterval(() => {
      for (const client of this.clients) client.flushHeld();
    }, FLUSH_INTERVAL_MS);
    this.flushTimer.unref();
  }

  async start(): Promise<void> {
    if (!this.redis.configured) return;
    const publisher = this.redis.duplicate({ commandTimeout: 2000 });
    this.publisher = publisher;
    publisher.on('error', () => undefined);
    await publisher.connect().catch(() => undefined);
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined); // state changes are logged by RedisConnection
    // ioredis re-subscribes after a reconnect; the first subscribe needs a ready connection.
    subscriber.on('ready', () => {
      subscriber.subscribe(FANOUT_CHANNEL).then(
        () => {
          this.selfSubscribed = true;
          this.subscriptions++;
          this.sayHello();
        },
        () => undefined,
      );
    });
    subscriber.on('close', () => {
      this.selfSubscribed = false;
    });
    subscriber.on('message', (_channel: string, message: string) => this.onRemote(message));
    await subscriber.connect().catch(() => undefined);
    this.presenceTimer = setInterval(() => this.sayHello(), PRESENCE_INTERVAL_MS);
    this.presenceTimer.unref();
  }

  /** Tells instances that stopped publishing because they were alone that this one is here. */
  private sayHello(): void {
    if (this.publisher?.status === 'ready') this.publisher.publish(FANOUT_CHANNEL, `${this.config.instanceId}\n${HELLO}`).catch(() => undefined);
  }

  /** Whether a batch needs to go out on Redis at all (othersListening never turns false on Cluster). */
  private get remoteDelivery(): boolean {
    return this.publisher !== undefined && this.othersListening;
  }

  // ---- subscriptions -----------------------------------------------------

  addClient(client: ClientConnection): void {
    this.clients.add(client);
  }

  removeClient(client: ClientConnection): void {
    // unsubscribe() also drops a device's set once it is empty (else byDevice
    // grows with every id a departed client watched, and deliver() would
    // build frames for empty sets).
    for (const deviceId of [...client.subscriptions]) this.unsubscribe(client, deviceId);
    client.discard();
    this.clients.delete(client);
  }

  subscribe(client: ClientConnection, deviceId: string): void {
    client.subscriptions.add(deviceId);
    let set = this.byDevice.get(deviceId);
    if (!set) this.byDevice.set(deviceId, (set = new Set()));
    set.add(client);
  }

  unsubscribe(client: ClientConnection, deviceId: string): void {
    client.subscriptions.delete(deviceId);
    const set = this.byDevice.get(deviceId);
    set?.delete(client);
    if (set?.size === 0) this.byDevice.delete(deviceId);
  }

  // ---- delivery ------------------------------------------------------------

  /** A batch this instance committed: deliver locally, then publish once for the others. */
  publishCommitted(samples: readonly Sample[]): void {
    // Nobody to deliver to, here or on another instance.
    const remote = this.remoteDelivery;
    if (samples.length === 0 || (this.clients.size === 0 && !remote)) return;
    const events = toSampleEvents(samples);
    this.deliver(events);
    const publisher = this.publisher;
    if (!publisher || !remote) return;
    if (publisher.status !== 'ready') {
      this.metrics.fanoutUnpublished.inc();
      this.setPublishing(false);
      return;
    }
    // "<origin>\n<json>": every instance, the sender included, receives each
    // message; the prefix lets the sender skip its own without parsing it.
    publisher.publish(FANOUT_CHANNEL, `${this.config.instanceId}\n${JSON.stringify(events)}`).then(
      (receivers) => {
        this.setPublishing(true);
        if (receivers === (this.selfSubscribed ? 1 : 0) && !this.redis.isCluster) this.othersListening = false;
      },
      () => {
        this.metrics.fanoutUnpublished.inc();
        this.setPublishing(false);
      },
    );
  }

  private onRemote(raw: string): void {
    const newline = raw.indexOf('\n');
    if (newline < 0 || raw.slice(0, newline) === this.config.instanceId) return;
    this.othersListening = true;
    if (raw.endsWith(`\n${HELLO}`)) return;
    // Status changes are rare and other services on this instance listen to them: always parsed.
    if (this.clients.size === 0 && raw.charAt(newline + 1) !== '{') return;
    let samples: unknown;
    try {
      samples = JSON.parse(raw.slice(newline + 1));
    } catch {
      return;
    }
    if (Array.isArray(samples)) this.deliver(samples as SampleEvent[]);
    else if (isStatusMessage(samples)) this.statusReceived(samples.status);
  }

  // ---- device status (one object message per change; older instances ignore non-arrays) ----

  /**
   * True while this instance hears every status change made elsewhere: no
   * Redis (a single instance), or subscribed to the channel.
   */
  get hearsOthers(): boolean {
    return !this.redis.configured || this.selfSubscribed;
  }

  /** Changes each time the subscription is (re)made; status changes may have been missed in between. */
  get subscriptionEpoch(): number {
    return this.subscriptions;
  }

  onStatus(listener: (event: StatusEvent) => void): void {
    this.statusListeners.push(listener);
  }

  /** A status change this instance made: announce it here and, once, to every other instance. */
  publishStatus(event: StatusEvent): void {
    this.statusReceived(event);
    const publisher = this.publisher;
    if (!publisher || !this.othersListening) return;
    if (publisher.status !== 'ready') {
      this.setPublishing(false);
      return;
    }
    publisher.publish(FANOUT_CHANNEL, `${this.config.instanceId}\n${JSON.stringify({ status: event })}`).then(
      (receivers) => {
        this.setPublishing(true);
        if (receivers === (this.selfSubscribed ? 1 : 0) && !this.redis.isCluster) this.othersListening = false;
      },
      () => this.setPublishing(false),
    );
  }

  private statusReceived(event: StatusEvent): void {
    for (const listener of this.statusListeners) listener(event);
    if (this.clients.size === 0) return;
    const direct = this.byDevice.get(event.deviceId);
    const everyone = this.byDevice.get('*');
    if (!direct && !everyone) return;
    // A control frame, not a sample: never replaced by a newer one for a slow client.
    const text = frame('status', event);
    if (direct) for (const client of direct) client.send(text);
    if (everyone) for (const client of everyone) if (!direct?.has(client)) client.send(text);
  }

  private deliver(events: SampleEvent[]): void {
    if (this.clients.size === 0) return;
    const everyone = this.byDevice.get('*');
    for (const event of events) {
      const direct = this.byDevice.get(event.deviceId);
      if (!direct && !everyone) continue;
      const text = frame('sample', event);
      if (direct) for (const client of direct) client.sendSample(event.deviceId, text);
      if (everyone) for (const client of everyone) if (!direct?.has(client)) client.sendSample(event.deviceId, text);
    }
  }

  private setPublishing(ok: boolean): void {
    if (ok === this.publishing) return;
    this.publishing = ok;
    if (ok) this.logger.log('cross-instance fan-out resumed');
    else this.logger.warn('Redis unavailable: live samples reach only this instance\'s WebSocket clients');
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.flushTimer);
    clearInterval(this.presenceTimer);
    const publisher = this.publisher;
    this.publisher = undefined;
    if (publisher) await publisher.quit().catch(() => publisher.disconnect());
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (subscriber) {
      subscriber.removeAllListeners('ready');
      await subscriber.quit().catch(() => subscriber.disconnect());
    }
  }
}
