// The one cache seam for the rest of the service: cache-aside reads with
// single flight, the latest-sample hashes, hit/miss accounting per cache
// class. Where the bytes live (Redis, or memory while Redis is down) is
// FailoverStore's business.
import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { type CacheClass, TelemetryMetrics } from '../metrics/telemetry-metrics';
import { RedisConnection } from '../redis/redis-connection';
import { cacheKeys } from '../redis/redis-names';
import type { LatestUpdate } from './hot-store';
import type { LatestPoints } from '../telemetry/sample';
import { FailoverStore } from './failover-store';
import { NearCache } from './near-cache';
import { TelemetryEvents, type Unsubscribe } from '../telemetry/telemetry-events';

/**
 * How long this instance may answer a device's latest values from its own
 * memory: the bound on how late it sees another instance's commit or DELETE.
 */
const NEAR_LATEST_MS = 1000;

export interface CacheClassStats {
  hits: number;
  misses: number;
  hitRatio: number;
}

@Injectable()
export class CacheService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Cache');
  private readonly store: FailoverStore;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly counts = new Map<CacheClass, { hits: number; misses: number; hit: { inc(): void }; miss: { inc(): void } }>();
  private readonly nearLatest: NearCache<LatestPoints>;
  private readonly subscriptions: Unsubscribe[] = [];
  /**
   * The near cache serves only while no other instance shares Redis: with
   * peers, each read goes to the shared cache so that what any instance
   * wrote or deleted is seen at once.
   */
  private nearEnabled = true;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    redis: RedisConnection,
    private readonly metrics: TelemetryMetrics,
    private readonly events: TelemetryEvents,
  ) {
    this.store = new FailoverStore(redis);
    this.nearLatest = new NearCache(Math.min(NEAR_LATEST_MS, config.cacheTtl.latestS * 1000));
    // Whatever this instance held may differ from what Redis holds after a switch either way.
    redis.onStateChange(() => this.nearLatest.clear());
  }

  /** Every committed batch updates the latest-sample cache: one pipelined round trip per batch. */
  onModuleInit(): void {
    this.subscriptions.push(
      this.events.on('batch.committed', (batch) => {
        this.recordLatest(batch.samples).catch((error: unknown) => this.logger.warn({ msg: 'latest cache update failed', error: String(error) }));
      }),
      this.events.on('peers.changed', ({ present }) => {
        this.nearEnabled = !present;
        this.nearLatest.clear();
      }),
    );
  }

  onModuleDestroy(): void {
    for (const unsubscribe of this.subscriptions.splice(0)) unsubscribe();
  }

  get backend(): 'redis' | 'memory' {
    return this.store.backend;
  }

  get ttl() {
    return this.config.cacheTtl;
  }

  // ---- generic operations ----------------------------------------------

  get(key: string): Promise<string | null> {
    return this.store.read((s) => s.get(key));
  }

  set(key: string, value: string, ttlS: number): Promise<void> {
    return this.store.write([key], (s) => s.set(key, value, ttlS));
  }

  del(keys: string[]): Promise<number> {
    return this.store.del(keys);
  }

  delPattern(pattern: string): Promise<number> {
    this.nearLatest.clear();
    return this.store.delPattern(pattern);
  }

  /** Seconds the entry has left; -2 when missing, -1 when it has no expiry. */
  ttlOf(key: string): Promise<number> {
    return this.store.read((s) => s.ttl(key));
  }

  countKeys(pattern: string): Promise<number> {
    return this.store.read((s) => s.countKeys(pattern));
  }

  memoryBytes(): Promise<number> {
    return this.store.read((s) => s.memoryBytes());
  }

  /**
   * Cache-aside read with single flight: concurrent misses on one key share
   * one load. A loader result of null (e.g. unknown device) is not cached.
   */
  async getOrLoad<T>(cacheClass: CacheClass, key: string, ttlS: number, load: () => Promise<T | null>): Promise<T | null> {
    const cached = await this.get(key);
    if (cached !== null) {
      this.count(cacheClass, true);
      return JSON.parse(cached) as T;
    }
    this.count(cacheClass, false);
    return this.singleFlight(key, async () => {
      const value = await load();
      if (value !== null) await this.set(key, JSON.stringify(value), ttlS);
      return value;
    });
  }

  // ---- latest sample -------------------------------------------------------

  /** Writes a committed batch's newest points per device: one round trip per batch. */
  async recordLatest(samples: ReadonlyArray<{ deviceId: string; metric: string; ts: number; value: number }>): Promise<void> {
    const byDevice = new Map<string, Map<string, [string, number, number]>>();
    for (const s of samples) {
      let points = byDevice.get(s.deviceId);
      if (!points) byDevice.set(s.deviceId, (points = new Map()));
      const have = points.get(s.metric);
      if (!have || have[1] < s.ts) points.set(s.metric, [s.metric, s.ts, s.value]);
    }
    const updates: LatestUpdate[] = [];
    for (const [deviceId, points] of byDevice) {
      updates.push({ key: cacheKeys.latest(deviceId), points: [...points.values()] });
      this.nearLatest.update(deviceId, (held) => mergePoints(held, points.values()));
    }
    await this.store.write(
      updates.map((u) => u.key),
      (s) => s.mergeLatest(updates, this.ttl.latestS, false),
    );
  }

  /** Latest points of a device, loading (and merging) from the database on a miss. */
  async getLatest(deviceId: string, load: () => Promise<LatestPoints | null>): Promise<LatestPoints | null> {
    const near = this.nearEnabled ? this.nearLatest.get(deviceId) : undefined;
    if (near) {
      this.count('latest', true);
      return near;
    }
    const epoch = this.nearLatest.epoch;
    const key = cacheKeys.latest(deviceId);
    const cached = await this.store.read((s) => s.getLatest(key));
    if (cached) {
      this.count('latest', true);
      if (this.nearEnabled) this.nearLatest.set(deviceId, cached, epoch);
      return cached;
    }
    this.count('latest', false);
    return this.singleFlight(key, async () => {
      const points = await load();
      if (!points || Object.keys(points).length === 0) return points;
      // Merge, not overwrite: a sample ingested while we queried must not be
      // replaced by an older one; and from now on the entry holds every metric.
      const update: LatestUpdate = { key, points: Object.entries(points).map(([m, p]) => [m, p.ts, p.value]) };
      await this.store.write([key], (s) => s.mergeLatest([update], this.ttl.latestS, true));
      return (await this.store.read((s) => s.getLatest(key))) ?? points;
    });
  }

  /** Removes everything cached about one device (after DELETE). */
  async invalidateDevice(deviceId: string): Promise<void> {
    this.nearLatest.delete(deviceId);
    await this.del(cacheKeys.deviceKeys(deviceId));
    for (const pattern of cacheKeys.devicePatterns(deviceId)) await this.delPattern(pattern);
  }

  classStats(): Record<CacheClass, CacheClassStats> {
    const out = {} as Record<CacheClass, CacheClassStats>;
    for (const cacheClass of ['latest', 'dashboard', 'device_stats', 'hourly'] as const) {
      const { hits, misses } = this.counts.get(cacheClass) ?? { hits: 0, misses: 0 };
      out[cacheClass] = { hits, misses, hitRatio: hits + misses === 0 ? 0 : hits / (hits + misses) };
    }
    return out;
  }

  // ---- plumbing ------------------------------------------------------------

  private count(cacheClass: CacheClass, hit: boolean): void {
    let c = this.counts.get(cacheClass);
    if (!c) {
      // Labelled children looked up once: labels() hashes the label set on every call.
      c = { hits: 0, misses: 0, hit: this.metrics.cacheHits.labels(cacheClass), miss: this.metrics.cacheMisses.labels(cacheClass) };
      this.counts.set(cacheClass, c);
    }
    if (hit) {
      c.hits++;
      c.hit.inc();
    } else {
      c.misses++;
      c.miss.inc();
    }
  }

  private singleFlight<T>(key: string, load: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running) return running as Promise<T>;
    const promise = load().finally(() => this.inflight.delete(key));
    this.inflight.set(key, promise);
    return promise;
  }
}

/** A new object (callers may hold the old one) with each metric's newer point. */
function mergePoints(held: LatestPoints, points: Iterable<[string, number, number]>): LatestPoints {
  const merged: LatestPoints = Object.assign(Object.create(null) as LatestPoints, held);
  for (const [metric, ts, value] of points) {
    const have = merged[metric];
    if (!have || have.ts < ts) merged[metric] = { ts, value };
  }
  return merged;
}
