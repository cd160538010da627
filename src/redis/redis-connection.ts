// Owns the Redis client shared by the cache, the WebSocket fan-out and the
// rate limiter. Fail-fast options (STACK.md): a dead Redis fails commands in
// ~0 ms and a hung one in COMMAND_TIMEOUT_MS, so callers can fall back to
// memory within the 100 ms the contract allows. Availability is tracked here
// once for everybody: a failed command marks Redis down at once, a PING probe
// marks it up again, and each change is logged once.
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import Redis, { Cluster, type RedisOptions } from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';

// Below the contract's 100 ms so a hung Redis costs a request less than that.
export const COMMAND_TIMEOUT_MS = 80;
const PROBE_INTERVAL_MS = 500;
/**
 * A link that went silent (no reset: dropped route, lost NAT state) never
 * closes by itself, and ioredis keeps using it: every command just times out,
 * also after the network is back. A connection that is seen hung is dropped
 * and reopened, at most this often, until one answers.
 */
const HUNG_RECONNECT_MS = 1500;
/**
 * How long probes must have gone unanswered before the link counts as hung.
 * One PING slower than the 80 ms command timeout is enough to serve from
 * memory, but on a busy machine it is no proof of a dead link, and reopening
 * every connection drops the fan-out publisher's batches meanwhile.
 */
const HUNG_AFTER_MS = 1000;

export type RedisStateListener = (up: boolean) => void | Promise<void>;

export function redisOptions(): RedisOptions {
  return {
    commandTimeout: COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 500,
    lazyConnect: true,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  };
}

@Injectable()
export class RedisConnection implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  private redis: Redis | Cluster | undefined;
  private up = false;
  private probe: NodeJS.Timeout | undefined;
  private readonly listeners: RedisStateListener[] = [];
  private lastError: string | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: TelemetryMetrics,
  ) {}

  /** Redis Cluster (REDIS_CLUSTER_NODES) rather than one server. */
  get isCluster(): boolean {
    return this.config.redis.clusterNodes !== undefined;
  }

  get configured(): boolean {
    return this.config.redis.url !== undefined || this.config.redis.clusterNodes !== undefined;
  }

  /** The database number of REDIS_URL (Cluster has only 0). */
  get database(): number {
    const client = this.client;
    return client instanceof Cluster ? 0 : (client.options.db ?? 0);
  }

  /** True while commands are expected to succeed. */
  get isUp(): boolean {
    return this.up;
  }

  get error(): string | undefined {
    return this.lastError;
  }

  /** The client; only call commands on it while isUp (or expect fast failures). */
  get client(): Redis | Cluster {
    if (!this.redis) throw new Error('Redis is not configured');
    return this.redis;
  }

  /** Creates another connection with the same settings (pub/sub needs its own). */
  duplicate(overrides: Partial<RedisOptions> = {}): Redis | Cluster {
    const client = this.client;
    const copy =
      client instanceof Cluster ? client.duplicate(undefined, { redisOptions: { ...client.options.redisOptions, ...overrides } }) : client.duplicate(overrides);
    // Reopened with the main connection when the link is found hung: an idle
    // subscriber on a silent link would otherwise wait for messages forever.
    this.duplicates.add(copy);
    copy.once('end', () => this.duplicates.delete(copy));
    return copy;
  }

  private readonly duplicates = new Set<Redis | Cluster>();
  private lastHungReconnect = 0;
  /** When probes started timing out (undefined while they are answered). */
  private silentSince: number | undefined;

  /** The probe failed: if the link looks silent rather than refused, reopen every connection. */
  private reconnectIfHung(error: unknown): void {
    const redis = this.redis;
    if (!redis) return;
    const timedOut = error instanceof Error && /timed out/i.test(error.message);
    // 'connect': TCP is up but the server never answered the ready check.
    // ('connecting' is bounded by connectTimeout, and a refused connection is
    // retried by ioredis itself: neither needs help.)
    const stuck = redis.status === 'connect';
    if (!timedOut && !stuck) {
      this.silentSince = undefined;
      return;
    }
    const now = Date.now();
    this.silentSince ??= now;
    if (now - this.silentSince < HUNG_AFTER_MS) return;
    if (now - this.lastHungReconnect < HUNG_RECONNECT_MS) return;
    this.lastHungReconnect = now;
    redis.disconnect(true);
    // A copy its owner closed (status 'end') stays closed.
    for (const copy of this.duplicates) if (copy.status !== 'end') copy.disconnect(true);
  }

  onStateChange(listener: RedisStateListener): void {
    this.listeners.push(listener);
  }

  async start(): Promise<void> {
    this.metrics.cacheBackendUp.set(0);
    if (!this.configured) return;
    const redis = this.create();
    this.redis = redis;
    redis.on('error', (error: Error) => {
      this.lastError = error.message;
      void this.setUp(false);
    });
    redis.on('close', () => void this.setUp(false));
    redis.on('ready', () => void this.check());
    try {
      await redis.connect();
    } catch (error) {
      // Redis being down at start-up only degrades the service; the probe keeps trying.
      this.lastError = error instanceof Error ? error.message : String(error);
      // The logger masks the URL's password.
      this.logger.warn({
        msg: 'Redis unreachable at start-up: using the memory cache until it answers',
        redis: this.config.redis.clusterNodes ? this.config.redis.clusterNodes.map((n) => `${n.host}:${n.port}`).join(',') : this.config.redis.url,
        error: this.lastError,
      });
    }
    await this.check();
    this.probe = setInterval(() => void this.check(), PROBE_INTERVAL_MS);
    this.probe.unref();
  }

  /**
   * REDIS_CLUSTER_NODES selects Redis Cluster; credentials and TLS then come
   * from REDIS_URL when it is also set (its host is ignored).
   */
  private create(): Redis | Cluster {
    const { url, clusterNodes } = this.config.redis;
    if (!clusterNodes) return new Redis(url as string, redisOptions());
    const auth = url ? new URL(url) : undefined;
    return new Cluster(clusterNodes, {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2000),
      slotsRefreshTimeout: 1000,
      redisOptions: {
        ...redisOptions(),
        lazyConnect: undefined,
        username: auth?.username ? decodeURIComponent(auth.username) : undefined,
        password: auth?.password ? decodeURIComponent(auth.password) : undefined,
        tls: auth?.protocol === 'rediss:' ? {} : undefined,
      },
    });
  }

  /** Callers report a failed command; a hung server shows up only this way. */
  reportFailure(error: unknown): void {
    this.lastError = error instanceof Error ? error.message : String(error);
    void this.setUp(false);
  }

  async ping(): Promise<number> {
    const started = performance.now();
    await this.client.ping();
    return performance.now() - started;
  }

  private checking: Promise<void> | undefined;

  /**
   * One probe at a time; a caller arriving while one runs waits for it (so
   * start() returns only once the connection's state is known, even when the
   * 'ready' handler's probe started first).
   */
  private check(): Promise<void> {
    const redis = this.redis;
    if (!redis) return Promise.resolve();
    this.checking ??= (async () => {
      try {
        await redis.ping();
        this.silentSince = undefined;
        await this.setUp(true);
      } catch (error) {
        this.lastError = error instanceof Error ? error.message : String(error);
        await this.setUp(false);
        this.reconnectIfHung(error);
      }
    })().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private transition: Promise<void> = Promise.resolve();

  private setUp(up: boolean): Promise<void> {
    // Transitions run one after another so listeners (e.g. replaying
    // invalidations before Redis is used again) finish in order.
    this.transition = this.transition.then(async () => {
      if (up === this.up) return;
      if (up) {
        try {
          // e.g. the cache replays invalidations missed during the outage; if
          // that fails, Redis is not used again until the next probe succeeds.
          for (const listener of this.listeners) await listener(true);
        } catch (error) {
          this.lastError = error instanceof Error ? error.message : String(error);
          return;
        }
        this.up = true;
        this.lastError = undefined;
        this.metrics.cacheBackendUp.set(1);
        this.logger.log('Redis up: cache served by Redis');
      } else {
        this.up = false;
        this.metrics.cacheBackendUp.set(0);
        this.logger.warn({ msg: 'Redis down: falling back to the memory cache', error: this.lastError });
        for (const listener of this.listeners) await listener(false);
      }
    });
    return this.transition;
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.probe) clearInterval(this.probe);
    const redis = this.redis;
    this.redis = undefined;
    if (redis) {
      redis.removeAllListeners('close');
      redis.removeAllListeners('error');
      redis.on('error', () => undefined);
      await redis.quit().catch(() => redis.disconnect());
    }
  }
}
