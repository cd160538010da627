// Redis faults against a PRIVATE redis-server (never the shared one): when it
// dies (SIGKILL) or hangs (SIGSTOP) every route still answers as before, from
// memory and PostgreSQL, within its normal latency + 100 ms (docs/api.md HTTP API; plus
// a 150 ms allowance for CI noise); /health turns degraded; the backend gauge
// follows; each state change is logged once; and after recovery nothing written
// to the memory cache during the outage is served (cache.service.ts resync:
// outage writes are replayed as deletions on Redis and the memory store is emptied).
import Redis from 'ioredis';
import type { Sample } from '../../src/telemetry/sample';
import { SampleWriter } from '../../src/storage/sample-writer';
import { CacheService } from '../../src/cache/cache.service';
import { cacheKeys } from '../../src/redis/redis-names';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { freePort, waitFor } from '../support/free-port';
import { metricValue } from '../support/app-process';
import { PrivateRedis } from '../support/private-redis';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('fault');

const ADMIN_KEY = 'cache-faults-admin-key';
const CONTRACT_ALLOWANCE_MS = 100;
const CI_NOISE_MS = 150;
const HOUR = 3600_000;
const MIN = 60_000;

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Timed {
  status: number;
  body: Json;
  ms: number;
}

describeWithServers(['postgres'])('cache fallback when Redis dies or hangs (private redis-server)', () => {
  let db: TestDatabase;
  let redisServer: PrivateRedis;
  let testApp: TestApp;
  const run = Math.random().toString(36).slice(2, 8);
  const now = Date.now();
  const hourBase = Math.floor(now / HOUR) * HOUR - 3 * HOUR;
  const devA = `${run}-a`;
  const devB = `${run}-b`;
  const nope = `${run}-nope`;

  const routes: Array<{ name: string; url: string; sameBody: boolean }> = [
    { name: 'devices', url: '/api/devices?limit=10', sameBody: true },
    { name: 'latest', url: `/api/devices/${devA}/latest`, sameBody: true },
    { name: 'stats', url: `/api/devices/${devA}/stats`, sameBody: true },
    {
      name: 'hourly',
      url: `/api/devices/${devA}/aggregates/hourly?metric=t&from=${new Date(hourBase).toISOString()}&to=${new Date(hourBase + 3 * HOUR).toISOString()}`,
      sameBody: true,
    },
    { name: 'samples', url: `/api/devices/${devA}/samples?limit=20`, sameBody: true },
    { name: 'dashboard', url: '/api/dashboard/metrics', sameBody: false },
    { name: 'cache-stats', url: '/api/cache/stats', sameBody: false },
    { name: 'health', url: '/health', sameBody: false },
    { name: 'latest-404', url: `/api/devices/${nope}/latest`, sameBody: true },
    { name: 'stats-404', url: `/api/devices/${nope}/stats`, sameBody: true },
  ];
  const normal = new Map<string, { status: number; body: Json; maxMs: number; warmMaxMs: number }>();
  const report: Record<string, Record<string, number>> = {};

  async function timedGet(url: string): Promise<Timed> {
    const started = performance.now();
    const res = await fetch(`${testApp.baseUrl}${url}`);
    const text = await res.text();
    const ms = performance.now() - started;
    return { status: res.status, body: text ? JSON.parse(text) : undefined, ms };
  }

  async function getJson(url: string): Promise<Json> {
    const res = await timedGet(url);
    if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  async function ingest(samples: Sample[], cache = true): Promise<void> {
    const t = Date.now();
    const devices = [...new Set(samples.map((s) => s.deviceId))].map((deviceId) => ({ deviceId, firstSeenMs: t, lastSeenMs: t }));
    await testApp.get(SampleWriter).write(samples, devices);
    if (cache) await testApp.get(CacheService).recordLatest(samples);
  }

  async function gauge(): Promise<number> {
    const text = (await testApp.app.inject({ method: 'GET', url: '/metrics' })).body;
    return metricValue(text, 'telemetry_cache_backend_up');
  }

  const logCount = (pattern: RegExp) => testApp.logs.filter((line) => pattern.test(line)).length;
  const DOWN = /Redis down/;
  const UP = /Redis up/;

  /** A short-lived client of our private server, for looking at what it holds. */
  async function inspect<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = new Redis(redisServer.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    r.on('error', () => undefined);
    await r.connect();
    try {
      return await fn(r);
    } finally {
      r.disconnect();
    }
  }

  /** Every route, `rounds` times: same status (and body where data did not change), latency within the bound. */
  async function checkAllRoutes(phase: string, rounds: number): Promise<void> {
    const worst: Record<string, number> = {};
    for (let round = 0; round < rounds; round++) {
      for (const route of routes) {
        const before = normal.get(route.name)!;
        const res = await timedGet(route.url);
        worst[route.name] = Math.max(worst[route.name] ?? 0, res.ms);
        const bound = before.maxMs + CONTRACT_ALLOWANCE_MS + CI_NOISE_MS;
        expect({ phase, route: route.name, round, status: res.status, withinBound: res.ms <= bound, ms: Math.round(res.ms), bound: Math.round(bound) }).toEqual(
          {
            phase,
            route: route.name,
            round,
            status: before.status,
            withinBound: true,
            ms: Math.round(res.ms),
            bound: Math.round(bound),
          },
        );
        if (route.sameBody) expect({ route: route.name, body: res.body }).toEqual({ route: route.name, body: before.body });
      }
    }
    for (const [name, ms] of Object.entries(worst)) (report[name] ??= {})[phase] = Math.round(ms * 10) / 10;
  }

  beforeAll(async () => {
    redisServer = await PrivateRedis.start();
    db = await createTestDatabase('cache_faults');
    testApp = await startTestApp({
      DATABASE_URL: db.url,
      REDIS_URL: redisServer.url,
      MQTT_URL: undefined,
      MQTT_PORT: String(await freePort()),
      ADMIN_API_KEY: ADMIN_KEY,
      // Long enough that an entry written to memory during the first outage would
      // still be alive during the second one if the resync did not empty the memory store.
      CACHE_TTL_LATEST_S: '300',
    });
    const samples: Sample[] = [];
    for (let i = 0; i < 30; i++) {
      samples.push({ deviceId: devA, metric: 't', ts: hourBase + i * 5 * MIN, value: 20 + (i % 7) });
      samples.push({ deviceId: devA, metric: 'h', ts: hourBase + i * 5 * MIN + 1000, value: 40 + (i % 5) });
    }
    samples.push({ deviceId: devB, metric: 't', ts: now - 10 * MIN, value: 7 });
    await ingest(samples);
  });

  afterAll(async () => {
    await testApp?.close();
    await redisServer?.destroy();
    await db?.drop();

    console.log(`cache-faults latency (ms; normal = max of cold + warm requests before the fault):\n${JSON.stringify(report, null, 1)}`);
  });

  it('starts on Redis: backend up, health ok, one "Redis up" line', async () => {
    expect(await gauge()).toBe(1);
    const health = await getJson('/health');
    expect(health).toMatchObject({ status: 'ok', checks: { redis: { status: 'up' } } });
    expect((await getJson('/api/cache/stats')).backend).toBe('redis');
    expect(logCount(UP)).toBe(1);
    expect(logCount(DOWN)).toBe(0);
  });

  it('measures the normal latency of every route (cold and warm)', async () => {
    for (let i = 0; i < 3; i++) for (const route of routes) await timedGet(route.url); // connections, JIT
    const samples = new Map<string, { status: number; body: Json; cold: number[]; warm: number[] }>();
    for (let i = 0; i < 2; i++) {
      const clear = await testApp.app.inject({ method: 'POST', url: '/api/cache/clear', headers: { 'x-api-key': ADMIN_KEY } });
      expect(clear.statusCode).toBe(200);
      for (const route of routes) {
        const res = await timedGet(route.url);
        const s = samples.get(route.name) ?? { status: res.status, body: res.body, cold: [], warm: [] };
        s.cold.push(res.ms);
        samples.set(route.name, s);
      }
      for (let j = 0; j < 4; j++) {
        for (const route of routes) {
          const res = await timedGet(route.url);
          const s = samples.get(route.name)!;
          expect({ route: route.name, status: res.status }).toEqual({ route: route.name, status: s.status });
          s.warm.push(res.ms);
        }
      }
    }
    for (const [name, s] of samples) {
      const warmMaxMs = Math.max(...s.warm);
      normal.set(name, { status: s.status, body: s.body, maxMs: Math.max(...s.cold, ...s.warm), warmMaxMs });
      report[name] = { normalMax: Math.round(Math.max(...s.cold, ...s.warm) * 10) / 10, normalWarmMax: Math.round(warmMaxMs * 10) / 10 };
    }
    expect(normal.get('latest')?.body.metrics).toEqual({ t: 20 + (29 % 7), h: 40 + (29 % 5) });
    expect(normal.get('latest-404')?.status).toBe(404);
  });

  describe('(a) Redis killed (SIGKILL)', () => {
    it('every route answers as before within normal + 100 ms (+150 ms CI allowance)', async () => {
      expect(await inspect((r) => r.exists(cacheKeys.latest(devA)))).toBe(1);
      await redisServer.kill('SIGKILL');
      await checkAllRoutes('killed', 3);
    });

    it('health is degraded (200), Redis down, backend gauge 0, cache stats say memory', async () => {
      const health = await timedGet('/health');
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'degraded', checks: { postgres: { status: 'up' }, redis: { status: 'down' } } });
      expect(await gauge()).toBe(0);
      expect((await getJson('/api/cache/stats')).backend).toBe('memory');
    });

    it('"Redis down" is logged exactly once however many requests and reconnect attempts follow', async () => {
      // Several probe intervals and reconnect attempts, with traffic.
      const until = Date.now() + 2000;
      while (Date.now() < until) {
        await timedGet(routes[1].url);
        await timedGet(routes[2].url);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(logCount(DOWN)).toBe(1);
      expect(logCount(UP)).toBe(1);
    });

    it('a sample recorded during the outage is served from memory meanwhile', async () => {
      // Only in the memory cache, never committed: a value from the outage that must not survive it.
      await testApp.get(CacheService).recordLatest([{ deviceId: devB, metric: 't', ts: now - MIN, value: 111 }]);
      expect((await getJson(`/api/devices/${devB}/latest`)).metrics).toEqual({ t: 111 });
    });
  });

  describe('(b) Redis restarted', () => {
    it('within a few seconds: backend gauge 1, health ok, "Redis up" logged once', async () => {
      await redisServer.restart();
      await waitFor(async () => (await gauge()) === 1, 10000, 'telemetry_cache_backend_up 1');
      const health = await timedGet('/health');
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'ok', checks: { redis: { status: 'up' } } });
      expect((await getJson('/api/cache/stats')).backend).toBe('redis');
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(logCount(UP)).toBe(2);
      expect(logCount(DOWN)).toBe(1);
    });

    it('serves the database value again, not the outage value', async () => {
      expect(await getJson(`/api/devices/${devB}/latest`)).toEqual({ deviceId: devB, ts: new Date(now - 10 * MIN).toISOString(), metrics: { t: 7 } });
      // Everything answers as it did before the fault.
      for (const route of routes.filter((r) => r.sameBody)) {
        const res = await timedGet(route.url);
        expect({ route: route.name, status: res.status, body: res.body }).toEqual({
          route: route.name,
          status: normal.get(route.name)!.status,
          body: normal.get(route.name)!.body,
        });
      }
    });
  });

  describe('(c) Redis hung (SIGSTOP), then resumed (SIGCONT)', () => {
    let heldBefore: Record<string, string>;

    it('every route answers as before within normal + 100 ms (+150 ms CI allowance)', async () => {
      // Redis now holds devA's latest (loaded from the database after the restart).
      heldBefore = await inspect((r) => r.hgetall(cacheKeys.latest(devA)));
      // '~complete' marks an entry loaded in full, '~ts' its newest point (src/cache/redis-store.ts).
      expect(Object.keys(heldBefore).sort()).toEqual(['h', 't', '~complete', '~ts']);
      redisServer.pause();
      await checkAllRoutes('hung', 3);
    });

    it('health is degraded (200), Redis down, backend gauge 0; "Redis down" logged once more', async () => {
      const health = await timedGet('/health');
      expect(health.status).toBe(200);
      expect(health.body).toMatchObject({ status: 'degraded', checks: { redis: { status: 'down' } } });
      expect(await gauge()).toBe(0);
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        await timedGet(routes[1].url);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(logCount(DOWN)).toBe(2);
      expect(logCount(UP)).toBe(2);
    });

    it('the value cached in memory during the first outage was dropped at the resync', async () => {
      // Memory serves now. Had the memory store kept the first outage's entry (TTL 300 s), this would be 111.
      expect(await getJson(`/api/devices/${devB}/latest`)).toEqual({ deviceId: devB, ts: new Date(now - 10 * MIN).toISOString(), metrics: { t: 7 } });
    });

    it('after SIGCONT: back on Redis, and a key written during the outage is not served stale from Redis', async () => {
      // Ingested during the outage: committed, and recorded in the memory cache only. Redis still holds the older hash.
      const newest = Date.now();
      await ingest([{ deviceId: devA, metric: 't', ts: newest, value: 222 }]);
      expect((await getJson(`/api/devices/${devA}/latest`)).metrics.t).toBe(222);

      redisServer.resume();
      await waitFor(async () => (await gauge()) === 1, 10000, 'telemetry_cache_backend_up 1 after SIGCONT');
      expect((await getJson('/api/cache/stats')).backend).toBe('redis');
      expect((await timedGet('/health')).body).toMatchObject({ status: 'ok', checks: { redis: { status: 'up' } } });

      // Without the replayed deletion Redis would still answer heldBefore (t = 20 + 29 % 7).
      const latest = await getJson(`/api/devices/${devA}/latest`);
      expect(latest).toEqual({ deviceId: devA, ts: new Date(newest).toISOString(), metrics: { t: 222, h: 40 + (29 % 5) } });
      const held = await inspect((r) => r.hgetall(cacheKeys.latest(devA)));
      expect(held.t.endsWith('|222')).toBe(true);

      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(logCount(UP)).toBe(3);
      expect(logCount(DOWN)).toBe(2);
    });
  });
});
