// The one cache seam for the rest of the service. Serves from Redis while it
// is up and from the bounded memory store otherwise, switching within one
// command timeout (100 ms) and back by itself. What was written or
// invalidated during an outage is replayed as deletions on Redis before it is
// used again, and the memory store is emptied, so a value from the outage
// (which may differ between instances) is never served afterwards.
import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { type CacheClass, TelemetryMetrics } from '../metrics/telemetry-metrics';
import { RedisConnection } from '../redis/redis-connection';
import { cacheKeys } from './cache-keys';
import type { HotStore, LatestPoints, LatestUpdate } from './hot-store';
import { MemoryStore } from './memory-store';
import { RedisStore } from './redis-store';

/** Keys remembered during an outage before falling back to clearing whole classes. */
const MAX_DIRTY_KEYS = 10_000;

export interface CacheClassStats {
  hits: number;
  misses: number;
  hitRatio: number;
}

@Injectable()
export class CacheService {
  private readonly logger = new Logger('Cache');
  private readonly memory = new MemoryStore();
  private readonly redisStore: RedisStore | undefined;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly dirtyKeys = new Set<string>();
  private readonly dirtyPatterns = new Set<string>();
  private dirtyOverflow = false;
  private readonly counts = new Map<CacheClass, { hits: number; misses: number }>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisConnection,
    private readonly metrics: TelemetryMetrics,
  ) {
    if (redis.configured) {
      this.redisStore = new RedisStore(redis.client);
      redis.onStateChange((up) => (up ? this.resync() : undefined));
    }
  }

  get backend(): 'redis' | 'memory' {
    return this.redisStore && this.redis.isUp ? 'redis' : 'memory';
  }

  get ttl() {
    return this.config.cacheTtl;
  }

  // ---- generic operations ----------------------------------------------

  get(key: string): Promise<string | null> {
    return this.read((s) => s.get(key));
  }

  set(key: string, value: string, ttlS: number): Promise<void> {
    return this.write([key], (s) => s.set(key, value, ttlS));
  }

  // Deletions go through write(): if Redis fails mid-call they are replayed at
  // the resync like any other outage write. Memory is emptied too, for entries
  // an outage left that no resync has cleared yet (a no-op when write() used it).
  async del(keys: string[]): Promise<number> {
    const deleted = await this.write(keys, (s) => s.del(keys));
    await this.memory.del(keys);
    return deleted;
  }

  async delPattern(pattern: string): Promise<number> {
    const deleted = await this.write([], (s) => s.delPattern(pattern), [pattern]);
    await this.memory.delPattern(pattern);
    return deleted;
  }

  /** Seconds the entry has left; -2 when missing, -1 when it has no expiry. */
  ttlOf(key: string): Promise<number> {
    return this.read((s) => s.ttl(key));
  }

  countKeys(pattern: string): Promise<number> {
    return this.read((s) => s.countKeys(pattern));
  }

  memoryBytes(): Promise<number> {
    return this.read((s) => s.memoryBytes());
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
    for (const [deviceId, points] of byDevice) updates.push({ key: cacheKeys.latest(deviceId), points: [...points.values()] });
    await this.write(
      updates.map((u) => u.key),
      (s) => s.mergeLatest(updates, this.ttl.latestS, false),
    );
  }

  /** Latest points of a device, loading (and merging) from the database on a miss. */
  async getLatest(deviceId: string, load: () => Promise<LatestPoints | null>): Promise<LatestPoints | null> {
    const key = cacheKeys.latest(deviceId);
    const cached = await this.read((s) => s.getLatest(key));
    if (cached) {
      this.count('latest', true);
      return cached;
    }
    this.count('latest', false);
    return this.singleFlight(key, async () => {
      const points = await load();
      if (!points || Object.keys(points).length === 0) return points;
      // Merge, not overwrite: a sample ingested while we queried must not be
      // replaced by an older one; and from now on the entry holds every metric.
      const update: LatestUpdate = { key, points: Object.entries(points).map(([m, p]) => [m, p.ts, p.value]) };
      await this.write([key], (s) => s.mergeLatest([update], this.ttl.latestS, true));
      return (await this.read((s) => s.getLatest(key))) ?? points;
    });
  }

  /** Removes everything cached about one device (after DELETE). */
  async invalidateDevice(deviceId: string): Promise<void> {
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
    if (!c) this.counts.set(cacheClass, (c = { hits: 0, misses: 0 }));
    if (hit) {
      c.hits++;
      this.metrics.cacheHits.labels(cacheClass).inc();
    } else {
      c.misses++;
      this.metrics.cacheMisses.labels(cacheClass).inc();
    }
  }

  private singleFlight<T>(key: string, load: () => Promise<T>): Promise<T> {
    const running = this.inflight.get(key);
    if (running) return running as Promise<T>;
    const promise = load().finally(() => this.inflight.delete(key));
    this.inflight.set(key, promise);
    return promise;
  }

  private async read<T>(op: (store: HotStore) => Promise<T>): Promise<T> {
    if (this.redisStore && this.redis.isUp) {
      try {
        return await op(this.redisStore);
      } catch (error) {
        this.redis.reportFailure(error);
      }
    }
    return op(this.memory);
  }

  /** Like read(), but what lands in memory while Redis is configured is marked for the resync. */
  private async write<T>(keys: string[], op: (store: HotStore) => Promise<T>, patterns: string[] = []): Promise<T> {
    if (this.redisStore && this.redis.isUp) {
      try {
        return await op(this.redisStore);
      } catch (error) {
        this.redis.reportFailure(error);
      }
    }
    if (this.redisStore) this.markDirty(keys, patterns);
    return op(this.memory);
  }

  private markDirty(keys: string[], patterns: string[]): void {
    for (const p of patterns) this.dirtyPatterns.add(p);
    if (this.dirtyOverflow) return;
    for (const k of keys) this.dirtyKeys.add(k);
    if (this.dirtyKeys.size > MAX_DIRTY_KEYS) {
      this.dirtyOverflow = true;
      this.dirtyKeys.clear();
    }
  }

  /** Runs before Redis is used again after an outage; a throw keeps it out of use. */
  private async resync(): Promise<void> {
    const store = this.redisStore as RedisStore;
    // Redis still counts as down while this runs, so marks can arrive during
    // a replay: each round takes what is marked and clears it, and another
    // round replays what came in meanwhile.
    for (let round = 0; round < 3 && (this.dirtyOverflow || this.dirtyKeys.size > 0 || this.dirtyPatterns.size > 0); round++) {
      const patterns = this.dirtyOverflow ? cacheKeys.allCachePatterns() : [...this.dirtyPatterns];
      const keys = [...this.dirtyKeys];
      this.dirtyKeys.clear();
      this.dirtyPatterns.clear();
      this.dirtyOverflow = false;
      try {
        for (let i = 0; i < keys.length; i += 500) await store.del(keys.slice(i, i + 500));
        for (const pattern of patterns) await store.delPattern(pattern);
      } catch (error) {
        this.markDirty(keys, patterns);
        throw error;
      }
      this.logger.log({ msg: 'replayed outage invalidations on Redis', keys: keys.length, patterns: patterns.length });
    }
    this.memory.clear();
  }
}
