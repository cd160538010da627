// CacheService with the real RedisConnection against a redis-server of this
// file's own (so it may be killed, hung and restarted), built from the cache,
// Redis, metrics and event modules only: loaders are the test's, no database.
import Redis from 'ioredis';
import { CacheModule } from '../../src/cache/cache.module';
import { CacheService } from '../../src/cache/cache.service';
import { RedisModule } from '../../src/redis/redis.module';
import { cacheKeys } from '../../src/redis/redis-names';
import type { LatestPoints, Sample } from '../../src/telemetry/sample';
import { TelemetryEvents } from '../../src/telemetry/telemetry-events';
import { type Component, startComponent } from '../support/component';
import { waitFor } from '../support/free-port';
import { PrivateRedis } from '../support/private-redis';
import { scanKeys } from '../support/redis-keys';
import { describeWithServers } from '../support/servers';

/** A promise the test settles by hand, to hold a loader open while others pile up behind it. */
function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const never = (): Promise<never> => Promise.reject(new Error('the loader must not run: the answer is cached'));

describeWithServers(['redis'])('CacheService (component, private redis-server)', () => {
  const run = Math.random().toString(36).slice(2, 8);
  let server: PrivateRedis;
  let inspector: Redis;
  let component: Component;
  let cache: CacheService;
  /** Loader runs in the current test. */
  let loads = 0;
  /** A loader that counts its runs and answers `answer` (a pending promise holds it open). */
  const counted =
    <T>(answer: T | Promise<T>) =>
    (): Promise<T> => {
      loads++;
      return Promise.resolve(answer);
    };

  /** A read (a failing command is how the cache notices), then: is it serving from memory? */
  const onMemory = async () => {
    await cache.get('telemetry:probe');
    return cache.backend === 'memory';
  };

  beforeEach(() => {
    loads = 0;
  });

  beforeAll(async () => {
    server = await PrivateRedis.start();
    component = await startComponent({ env: { REDIS_URL: server.url, CACHE_TTL_LATEST_S: '30' }, imports: [RedisModule, CacheModule] });
    cache = component.get(CacheService);
    inspector = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 100 });
    inspector.on('error', () => undefined);
    await inspector.connect();
    // RedisConnection.start() may return while the PING of its 'ready' handler
    // is still deciding (a second check() returns at once while one runs), so
    // the first milliseconds can be served from memory.
    await waitFor(() => cache.backend === 'redis', 5000, 'the cache on Redis');
  });

  afterAll(async () => {
    inspector?.disconnect();
    await component?.close();
    await server?.destroy();
  });

  describe('while Redis is up', () => {
    it('cache-aside with single flight: 25 concurrent misses run the loader once and all get its value; then hits', async () => {
      const key = cacheKeys.stats(`${run}-sf`);
      const gate = deferred<{ n: number }>();
      const load = counted(gate.promise);
      const before = cache.classStats().device_stats;
      const answers = Promise.all(Array.from({ length: 25 }, () => cache.getOrLoad('device_stats', key, 60, load)));
      // Every caller has missed and is waiting on the one load.
      await waitFor(() => cache.classStats().device_stats.misses - before.misses === 25, 5000, '25 misses');
      gate.resolve({ n: 42 });
      expect(await answers).toEqual(Array.from({ length: 25 }, () => ({ n: 42 })));
      expect(loads).toBe(1);

      expect(await cache.getOrLoad('device_stats', key, 60, never)).toEqual({ n: 42 });
      expect(cache.classStats().device_stats.hits - before.hits).toBe(1);
      expect(JSON.parse((await inspector.get(key)) as string)).toEqual({ n: 42 });
      const ttl = await inspector.ttl(key);
      expect(ttl).toBeGreaterThan(50);
      expect(ttl).toBeLessThanOrEqual(60);
    });

    it('a null answer is not cached, and a failed load fails every waiter once without poisoning the key', async () => {
      const key = cacheKeys.stats(`${run}-nf`);
      expect(await cache.getOrLoad('device_stats', key, 60, counted(null))).toBeNull();
      expect(await cache.getOrLoad('device_stats', key, 60, counted(null))).toBeNull();
      expect(loads).toBe(2);
      expect(await inspector.exists(key)).toBe(0);

      const gate = deferred<{ n: number }>();
      const waiters = Array.from({ length: 5 }, () => cache.getOrLoad('device_stats', key, 60, counted(gate.promise)));
      await waitFor(() => loads === 3, 5000, 'the load to start');
      gate.reject(new Error('database down'));
      for (const waiter of waiters) await expect(waiter).rejects.toThrow('database down');
      expect(loads).toBe(3);
      expect(await cache.getOrLoad('device_stats', key, 60, counted({ n: 1 }))).toEqual({ n: 1 });
      expect(loads).toBe(4);
    });

    it('latest: the load merges with what was recorded meanwhile (the newer point wins per metric), then is served from the cache', async () => {
      const deviceId = `${run}-merge`;
      await cache.recordLatest([{ deviceId, metric: 't', ts: 2000, value: 2 }]);
      // A batch's entry alone is not complete (other metrics may exist): the database is asked once.
      const gate = deferred<LatestPoints | null>();
      const answers = Promise.all(Array.from({ length: 10 }, () => cache.getLatest(deviceId, counted(gate.promise))));
      await waitFor(() => loads === 1, 5000, 'the latest load to start');
      // The database read is older for t than what the cache holds.
      gate.resolve({ t: { ts: 1000, value: 1 }, h: { ts: 1500, value: 5 } });
      const want = { t: { ts: 2000, value: 2 }, h: { ts: 1500, value: 5 } };
      for (const answer of await answers) expect({ ...answer }).toEqual(want);
      expect(loads).toBe(1);

      expect({ ...(await cache.getLatest(deviceId, never)) }).toEqual(want);
      // An older point recorded late changes nothing; a newer one replaces its metric only.
      await cache.recordLatest([
        { deviceId, metric: 't', ts: 1999, value: -1 },
        { deviceId, metric: 'h', ts: 3000, value: 6 },
        { deviceId, metric: 'h', ts: 2500, value: 7 },
      ]);
      expect({ ...(await cache.getLatest(deviceId, never)) }).toEqual({ t: { ts: 2000, value: 2 }, h: { ts: 3000, value: 6 } });
      const ttl = await inspector.ttl(cacheKeys.latest(deviceId));
      expect(ttl).toBeGreaterThan(20);
      expect(ttl).toBeLessThanOrEqual(30);
    });

    it('a batch.committed event updates the latest entry of every device in it', async () => {
      const events = component.get(TelemetryEvents);
      const [a, b] = [`${run}-ev-a`, `${run}-ev-b`];
      for (const id of [a, b]) await cache.getLatest(id, async () => ({ t: { ts: 1000, value: 1 } }));
      const samples: Sample[] = [
        { deviceId: a, metric: 't', ts: 5000, value: 50 },
        { deviceId: a, metric: 'h', ts: 5000, value: 51 },
        { deviceId: b, metric: 't', ts: 900, value: 9 }, // older than b's cached point
      ];
      events.emit('batch.committed', { samples, devices: [] });
      await waitFor(async () => (await cache.getLatest(a, never))?.t.ts === 5000, 5000, "a's entry to take the batch");
      expect({ ...(await cache.getLatest(a, never)) }).toEqual({ t: { ts: 5000, value: 50 }, h: { ts: 5000, value: 51 } });
      expect({ ...(await cache.getLatest(b, never)) }).toEqual({ t: { ts: 1000, value: 1 } });
    });

    it("invalidateDevice removes everything cached about one device and nothing of its neighbours'", async () => {
      const deviceId = `${run}-inv`;
      const neighbour = `${run}-inv-2`; // shares the id as a prefix
      for (const id of [deviceId, neighbour]) {
        await cache.getLatest(id, async () => ({ t: { ts: 1, value: 1 } }));
        await cache.set(cacheKeys.stats(id), '{}', 60);
        await cache.set(cacheKeys.hourly(id, 't', 0, 3_600_000), '[]', 60);
        await cache.set(cacheKeys.hourly(id, 'h', 0, 7_200_000), '[]', 60);
      }
      await cache.set(cacheKeys.dashboard(), '{}', 60);
      expect(await scanKeys(inspector, `telemetry:*{${deviceId}}*`)).toHaveLength(4);

      await cache.invalidateDevice(deviceId);

      expect(await scanKeys(inspector, `telemetry:*{${deviceId}}*`)).toEqual([]);
      expect(await scanKeys(inspector, `telemetry:*{${neighbour}}*`)).toHaveLength(4);
      expect(await inspector.exists(cacheKeys.dashboard())).toBe(1);
      await cache.getLatest(deviceId, counted({ t: { ts: 2, value: 2 } }));
      expect(loads).toBe(1);
    });
  });

  describe('when Redis fails', () => {
    it('killed: falls back to memory and keeps caching there; restarted: back on Redis, and nothing cached during the outage is served again', async () => {
      const key = cacheKeys.stats(`${run}-outage`);
      await server.kill('SIGKILL');
      await waitFor(onMemory, 5000, 'the memory fallback');

      expect(await cache.getOrLoad('device_stats', key, 300, counted({ during: 'outage' }))).toEqual({ during: 'outage' });
      expect(await cache.getOrLoad('device_stats', key, 300, never)).toEqual({ during: 'outage' }); // from memory
      expect(loads).toBe(1);

      await server.restart();
      await waitFor(() => cache.backend === 'redis', 15_000, 'the cache back on Redis');
      // The outage value may differ from other instances' view: it is not served again.
      expect(await cache.getOrLoad('device_stats', key, 300, counted({ during: 'after' }))).toEqual({ during: 'after' });
      expect(loads).toBe(2);
      await waitFor(async () => inspector.status === 'ready', 10_000, 'the inspector to reconnect');
      expect(JSON.parse((await inspector.get(key)) as string)).toEqual({ during: 'after' });

      // The memory store was emptied at the resync: a second outage does not bring the first one's value back.
      await server.kill('SIGKILL');
      await waitFor(onMemory, 5000, 'the memory fallback again');
      expect(await cache.getOrLoad('device_stats', key, 300, counted({ during: 'second outage' }))).toEqual({ during: 'second outage' });
      expect(loads).toBe(3);
      await server.restart();
      await waitFor(() => cache.backend === 'redis', 15_000, 'the cache back on Redis');
    });

    it('hung: an invalidation made while Redis does not answer is replayed on Redis before it is used again', async () => {
      const deviceId = `${run}-hang`;
      const statsKey = cacheKeys.stats(deviceId);
      await cache.set(statsKey, JSON.stringify({ stale: true }), 300);
      expect(await inspector.exists(statsKey)).toBe(1);

      server.pause();
      try {
        // A read times out and moves the cache to memory (that command itself
        // still reaches Redis once it resumes); the deletion that follows goes
        // to memory only and must be remembered for the resync.
        await cache.get('telemetry:probe');
        await waitFor(() => cache.backend === 'memory', 5000, 'the memory fallback');
        await cache.invalidateDevice(deviceId);
      } finally {
        server.resume();
      }
      await waitFor(() => cache.backend === 'redis', 15_000, 'the cache back on Redis');
      expect(await inspector.exists(statsKey)).toBe(0);
      expect(await cache.getOrLoad('device_stats', statsKey, 300, async () => ({ stale: false }))).toEqual({ stale: false });
    });
  });
});
