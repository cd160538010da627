// Two instances on one PostgreSQL database and one Redis (shared server,
// database number 12, reserved for this file and flushed before and after):
// the cache is shared, so what one instance writes, loads or invalidates is
// what the other serves.
import Redis from 'ioredis';
import type { Sample } from '../../src/telemetry/sample';
import { SampleWriter } from '../../src/storage/sample-writer';
import { CacheService } from '../../src/cache/cache.service';
import { cacheKeys } from '../../src/redis/redis-names';
import { TelemetryQueries } from '../../src/storage/telemetry-queries';
import { scanKeys } from '../support/redis-keys';
import { describeWithServers, sharedRedisUrl } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { freePort } from '../support/free-port';
import { metricValue } from '../support/app-process';

const REDIS_URL = sharedRedisUrl(12);
const ADMIN_KEY = 'two-instances-admin-key';
const MIN = 60_000;

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

describeWithServers(['postgres', 'redis'])('two instances sharing PostgreSQL and Redis (db 12)', () => {
  let db: TestDatabase;
  let a: TestApp;
  let b: TestApp;
  let redis: Redis;
  const run = Math.random().toString(36).slice(2, 8);
  const now = Date.now();

  async function get(app: TestApp, url: string): Promise<{ status: number; body: Json }> {
    const res = await app.app.inject({ method: 'GET', url });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
  }

  async function counter(app: TestApp, kind: 'hits' | 'misses', cache: string): Promise<number> {
    const text = (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
    return metricValue(text, `telemetry_cache_${kind}_total`, { cache });
  }

  /** Ingestion's path on one instance: commit, then record the latest points in the cache. */
  async function ingestVia(app: TestApp, samples: Sample[]): Promise<void> {
    const t = Date.now();
    const devices = [...new Set(samples.map((s) => s.deviceId))].map((deviceId) => ({ deviceId, firstSeenMs: t, lastSeenMs: t }));
    await app.get(SampleWriter).write(samples, devices);
    await app.get(CacheService).recordLatest(samples);
  }

  const redisKeys = (pattern: string) => scanKeys(redis, pattern);

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.flushdb();
    db = await createTestDatabase('cache_two');
    const env = { DATABASE_URL: db.url, REDIS_URL, MQTT_URL: undefined, ADMIN_API_KEY: ADMIN_KEY };
    a = await startTestApp({ ...env, MQTT_PORT: String(await freePort()), INSTANCE_ID: `two-a-${run}` });
    b = await startTestApp({ ...env, MQTT_PORT: String(await freePort()), INSTANCE_ID: `two-b-${run}` });
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
    if (redis) {
      await redis.flushdb();
      await redis.quit();
    }
  });

  it('both instances use Redis', async () => {
    expect((await get(a, '/api/cache/stats')).body.backend).toBe('redis');
    expect((await get(b, '/api/cache/stats')).body.backend).toBe('redis');
  });

  it('a latest written through A is served by B from the cache', async () => {
    const dev = `${run}-latest`;
    await ingestVia(a, [
      { deviceId: dev, metric: 't', ts: now - 2 * MIN, value: 21.5 },
      { deviceId: dev, metric: 'h', ts: now - MIN, value: 40 },
    ]);
    // An entry created by ingest alone may lack metrics; the first read on A completes it from the database.
    expect((await get(a, `/api/devices/${dev}/latest`)).body.metrics).toEqual({ t: 21.5, h: 40 });
    const spy = jest.spyOn(b.get(TelemetryQueries), 'latest');
    const hits = await counter(b, 'hits', 'latest');
    const misses = await counter(b, 'misses', 'latest');
    try {
      const res = await get(b, `/api/devices/${dev}/latest`);
      expect(res).toEqual({ status: 200, body: { deviceId: dev, ts: new Date(now - MIN).toISOString(), metrics: { t: 21.5, h: 40 } } });
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    expect(await counter(b, 'hits', 'latest')).toBe(hits + 1);
    expect(await counter(b, 'misses', 'latest')).toBe(misses);

    // A newer point through A reaches B at once; an older one through B does not undo it on A.
    await ingestVia(a, [{ deviceId: dev, metric: 't', ts: now, value: 23 }]);
    expect((await get(b, `/api/devices/${dev}/latest`)).body.metrics.t).toBe(23);
    await ingestVia(b, [{ deviceId: dev, metric: 't', ts: now - 5 * MIN, value: 1 }]);
    expect((await get(a, `/api/devices/${dev}/latest`)).body.metrics.t).toBe(23);
  });

  it('stats loaded by A are a hit on B', async () => {
    const dev = `${run}-stats`;
    await ingestVia(a, [{ deviceId: dev, metric: 't', ts: now - 10 * MIN, value: 5 }]);
    const aMisses = await counter(a, 'misses', 'device_stats');
    const fromA = await get(a, `/api/devices/${dev}/stats`);
    expect(fromA.status).toBe(200);
    expect(await counter(a, 'misses', 'device_stats')).toBe(aMisses + 1);

    const bHits = await counter(b, 'hits', 'device_stats');
    const bMisses = await counter(b, 'misses', 'device_stats');
    const spy = jest.spyOn(b.get(TelemetryQueries), 'stats');
    try {
      const fromB = await get(b, `/api/devices/${dev}/stats`);
      expect(fromB).toEqual(fromA);
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
    expect(await counter(b, 'hits', 'device_stats')).toBe(bHits + 1);
    expect(await counter(b, 'misses', 'device_stats')).toBe(bMisses);
  });

  it('DELETE on A: B answers 404 and the device has no cache keys left', async () => {
    const dev = `${run}-victim`;
    await ingestVia(a, [{ deviceId: dev, metric: 't', ts: now - 10 * MIN, value: 5 }]);
    // B warms every per-device class.
    expect((await get(b, `/api/devices/${dev}/latest`)).status).toBe(200);
    expect((await get(b, `/api/devices/${dev}/stats`)).status).toBe(200);
    expect((await get(b, `/api/devices/${dev}/aggregates/hourly?metric=t`)).status).toBe(200);
    expect((await redisKeys(`telemetry:*${dev}*`)).length).toBeGreaterThanOrEqual(3);

    const del = await a.app.inject({ method: 'DELETE', url: `/api/devices/${dev}`, headers: { 'x-api-key': ADMIN_KEY } });
    expect(del.statusCode).toBe(204);

    expect(await redisKeys(`telemetry:*${dev}*`)).toEqual([]);
    for (const url of [
      `/api/devices/${dev}/latest`,
      `/api/devices/${dev}/stats`,
      `/api/devices/${dev}/aggregates/hourly?metric=t`,
      `/api/devices/${dev}/samples`,
    ]) {
      const res = await get(b, url);
      expect({ url, status: res.status }).toEqual({ url, status: 404 });
    }
    expect((await get(a, `/api/devices/${dev}/latest`)).status).toBe(404);
  });

  it('POST /api/cache/clear on A: B misses next time', async () => {
    const dev = `${run}-clear`;
    await ingestVia(a, [{ deviceId: dev, metric: 't', ts: now - 10 * MIN, value: 5 }]);
    await get(b, `/api/devices/${dev}/stats`);
    await get(b, '/api/dashboard/metrics');
    const bHits = await counter(b, 'hits', 'device_stats');
    await get(b, `/api/devices/${dev}/stats`);
    expect(await counter(b, 'hits', 'device_stats')).toBe(bHits + 1);

    const clear = await a.app.inject({ method: 'POST', url: '/api/cache/clear', headers: { 'x-api-key': ADMIN_KEY } });
    expect(clear.statusCode).toBe(200);
    expect(clear.json().cleared).toBeGreaterThanOrEqual(3);
    expect(await redis.exists(cacheKeys.stats(dev), cacheKeys.latest(dev), cacheKeys.dashboard())).toBe(0);

    const before = {
      stats: await counter(b, 'misses', 'device_stats'),
      latest: await counter(b, 'misses', 'latest'),
      dashboard: await counter(b, 'misses', 'dashboard'),
    };
    expect((await get(b, `/api/devices/${dev}/stats`)).status).toBe(200);
    expect((await get(b, `/api/devices/${dev}/latest`)).body.metrics).toEqual({ t: 5 });
    expect((await get(b, '/api/dashboard/metrics')).status).toBe(200);
    expect({
      stats: await counter(b, 'misses', 'device_stats'),
      latest: await counter(b, 'misses', 'latest'),
      dashboard: await counter(b, 'misses', 'dashboard'),
    }).toEqual({ stats: before.stats + 1, latest: before.latest + 1, dashboard: before.dashboard + 1 });
  });
});
