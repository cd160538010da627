// Delivers committed samples to WebSocket subscribers on every instance. The
// ingesting instance delivers to its own clients directly (no Redis round
// trip, and it keeps working while Redis is down) and publishes each batch
// ONCE on a Redis channel; the other instances deliver what they receive.
// A lone instance (PUBLISH reaches no subscriber but its own) stops building
// and publishing those messages until another instance announces itself:
// every instance says "hello" on the channel when its subscription is ready
// and every PRESENCE_INTERVAL_MS. On Redis Cluster PUBLISH counts only the
// receivers on one node, so there it always publishes.
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { fanoutChannel } from '../redis/redis-names';
import type { Sample } from '../telemetry/sample';
import { TelemetryEvents, type Unsubscribe } from '../telemetry/telemetry-events';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { RedisConnection } from '../redis/redis-connection';
import type { ClientConnection } from './client-connection';
import { frame, type SampleEvent, type StatusEvent } from './ws-protocol';

const FLUSH_INTERVAL_MS = 50;
const PRESENCE_INTERVAL_MS = 5000;
const HELLO = 'hello';
/** A peer not heard from for this long (three missed hellos) is gone. */
const PEER_TIMEOUT_MS = 3 * PRESENCE_INTERVAL_MS;

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

/** A device-scoped event other than samples (`status`, `alarm`): one object message per event. */
interface DeviceEvent {
  deviceId: string;
  event: string;
  data: unknown;
}

function isDeviceEvent(value: unknown): value is DeviceEvent {
  const v = value as Partial<DeviceEvent> | null;
  return typeof v === 'object' && v !== null && typeof v.deviceId === 'string' && typeof v.event === 'string';
}

@Injectable()
export class FanoutService implements OnApplicationBootstrap, OnApplicationShutdown {
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
  /** Other instances heard on the channel, with when. */
  private readonly peers = new Map<string, number>();
  private offCommitted: Unsubscribe | undefined;
  private readonly statusListeners: Array<(event: StatusEvent) => void> = [];
  /** Counts (re)subscriptions: a listener that saw it change may have missed messages in between. */
  private subscriptions = 0;
  private channel = fanoutChannel();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisConnection,
    private readonly metrics: TelemetryMetrics,
    private readonly events: TelemetryEvents,
  ) {
    this.flushTimer = setInterval(() => {
      for (const client of this.clients) client.flushHeld();
    }, FLUSH_INTERVAL_MS);
    this.flushTimer.unref();
  }

  async onApplicationBootstrap(): Promise<void> {
    this.offCommitted = this.events.on('batch.committed', (batch) => this.publishCommitted(batch.samples));
    await this.start();
  }

  private async start(): Promise<void> {
    if (!this.redis.configured) return;
    this.channel = fanoutChannel(this.redis.database);
    const publisher = this.redis.duplicate({ commandTimeout: 2000 });
    this.publisher = publisher;
    publisher.on('error', () => undefined);
    await publisher.connect().catch(() => undefined);
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined); // state changes are logged by RedisConnection
    // ioredis re-subscribes after a reconnect; the first subscribe needs a ready connection.
    subscriber.on('ready', () => {
      subscriber.subscribe(this.channel).then(
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
    this.presenceTimer = setInterval(() => {
      this.sayHello();
      this.forgetSilentPeers();
    }, PRESENCE_INTERVAL_MS);
    this.presenceTimer.unref();
  }

  /** Tells instances that stopped publishing because they were alone that this one is here. */
  private sayHello(): void {
    if (this.publisher?.status === 'ready') this.publisher.publish(this.channel, `${this.config.instanceId}\n${HELLO}`).catch(() => undefined);
  }

  /** A newcomer is answered at once, so both sides know of each other within a round trip. */
  private heardFrom(origin: string): void {
    const known = this.peers.has(origin);
    this.peers.set(origin, Date.now());
    if (known) return;
    if (this.peers.size === 1) this.events.emit('peers.changed', { present: true });
    this.sayHello();
  }

  private forgetSilentPeers(): void {
    if (this.peers.size === 0) return;
    const cutoff = Date.now() - PEER_TIMEOUT_MS;
    for (const [origin, seen] of this.peers) if (seen < cutoff) this.peers.delete(origin);
    if (this.peers.size === 0) this.events.emit('peers.changed', { present: false });
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
    if (remote) this.publish(JSON.stringify(events));
  }

  /**
   * One message for the other instances. "<origin>\n<json>": every instance,
   * the sender included, receives each message; the prefix lets the sender
   * skip its own without parsing it. Sample batches are JSON arrays, device
   * events objects. A PUBLISH that reached only this instance's own
   * subscriber means nobody else listens (not on Cluster, where it counts one node).
   */
  private publish(json: string): void {
    const publisher = this.publisher;
    if (!publisher) return;
    if (publisher.status !== 'ready') {
      this.metrics.fanoutUnpublished.inc();
      this.setPublishing(false);
      return;
    }
    publisher.publish(this.channel, `${this.config.instanceId}\n${json}`).then(
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

  /**
   * Any other event about one device (e.g. `alarm`), announced once by the
   * instance where it happened: delivered to this instance's clients
   * subscribed to the device or `*`, and published for the others as a JSON
   * object (sample batches are arrays, so older instances ignore it).
   */
  publishEvent(deviceId: string, event: string, data: unknown): void {
    const message: DeviceEvent = { deviceId, event, data };
    this.deliverEvent(message);
    if (this.remoteDelivery) this.publish(JSON.stringify(message));
  }

  private onRemote(raw: string): void {
    const newline = raw.indexOf('\n');
    if (newline < 0 || raw.slice(0, newline) === this.config.instanceId) return;
    this.othersListening = true;
    this.heardFrom(raw.slice(0, newline));
    if (raw.endsWith(`\n${HELLO}`)) return;
    // Device events are rare and services on this instance listen to them: always parsed.
    if (this.clients.size === 0 && raw.charAt(newline + 1) !== '{') return;
    let samples: unknown;
    try {
      samples = JSON.parse(raw.slice(newline + 1));
    } catch {
      return;
    }
    if (Array.isArray(samples)) this.deliver(samples as SampleEvent[]);
    else if (isDeviceEvent(samples)) this.deliverEvent(samples);
  }

  // ---- device status: other services here hear every change, made here or elsewhere ----

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
    this.publishEvent(event.deviceId, 'status', event);
  }

  /** Events are rare and small: sent like replies, never coalesced like samples. */
  private deliverEvent(message: DeviceEvent): void {
    if (message.event === 'status') for (const listener of this.statusListeners) listener(message.data as StatusEvent);
    if (this.clients.size === 0) return;
    const direct = this.byDevice.get(message.deviceId);
    const everyone = this.byDevice.get('*');
    if (!direct && !everyone) return;
    const text = frame(message.event, message.data);
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
    else this.logger.warn("Redis unavailable: live samples reach only this instance's WebSocket clients");
  }

  async onApplicationShutdown(): Promise<void> {
    this.offCommitted?.();
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
