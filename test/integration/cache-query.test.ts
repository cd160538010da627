// The query API of docs/api.md HTTP API against real PostgreSQL and the shared Redis
// (database number 11, reserved for this file and flushed before and after):
// shapes and JSON number types of every route, cache keys and TTLs as Redis
// sees them, hit/miss accounting, single-flight loads, invalidation, admin
// guards, and the error shape.
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

const REDIS_URL = sharedRedisUrl(11);
const ADMIN_KEY = 'cache-query-admin-key';
const HOUR = 3600_000;
const MIN = 60_000;
const hourStart = (ms: number) => Math.floor(ms / HOUR) * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Reply {
  status: number;
  body: Json;
  text: string;
}

describeWithServers(['postgres', 'redis'])('query API with PostgreSQL and Redis (db 11)', () => {
  let db: TestDatabase;
  let testApp: TestApp;
  let redis: Redis;
  const run = Math.random().toString(36).slice(2, 8);
  const id = (name: string) => `${run}-${name}`;

  // Fixed layout for the main device, relative to the current hour so "last 24 h" holds it.
  const now = Date.now();
  const base = hourStart(now) - 10 * HOUR;
  const D1 = id('d1');
  const d1Samples: Sample[] = [
    { deviceId: D1, metric: 'temperature', ts: base + 5 * MIN, value: 20 },
    { deviceId: D1, metric: 'temperature', ts: base + 20 * MIN, value: 22 },
    { deviceId: D1, metric: 'temperature', ts: base + HOUR + 10 * MIN, value: 25 },
    { deviceId: D1, metric: 'temperature', ts: base + 2 * HOUR + 59 * MIN, value: 19 },
    { deviceId: D1, metric: 'temperature', ts: base + 3 * HOUR, value: 30 },
    { deviceId: D1, metric: 'temperature', ts: now - 30 * HOUR, value: 100 }, // outside the last 24 h
    { deviceId: D1, metric: 'humidity', ts: base + 10 * MIN, value: 40 },
    { deviceId: D1, metric: 'humidity', ts: base + 2 * HOUR, value: 45.5 },
  ];

  async function call(
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    options: { key?: string; payload?: unknown; headers?: Record<string, string> } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key !== undefined) headers['x-api-key'] = options.key;
    const res = await testApp.app.inject({
      method,
      url,
      headers,
      ...(options.payload !== undefined ? { payload: options.payload as string | object } : {}),
    });
    let body: Json;
    try {
      body = res.body.length > 0 ? JSON.parse(res.body) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.statusCode, body, text: res.body };
  }

  async function ok(url: string): Promise<Json> {
    const res = await call('GET', url);
    if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${res.text}`);
    return res.body;
  }

  function expectError(res: Reply, status: number): void {
    expect({ status: res.status, text: res.text }).toMatchObject({ status });
    expect(Object.keys(res.body).sort()).toEqual(['message', 'statusCode']);
    expect(res.body.statusCode).toBe(status);
    expect(typeof res.body.message).toBe('string');
    expect(res.body.message.length).toBeGreaterThan(0);
  }

  /** What ingestion does: commit the batch, then record the newest points in the cache. */
  async function ingest(samples: Sample[], cache = true): Promise<void> {
    const seen = new Map<string, number>();
    for (const s of samples) seen.set(s.deviceId, Date.now());
    await testApp.get(SampleWriter).write(
      samples,
      [...seen].map(([deviceId, t]) => ({ deviceId, firstSeenMs: t, lastSeenMs: t })),
    );
    if (cache) await testApp.get(CacheService).recordLatest(samples);
  }

  const redisKeys = (pattern: string) => scanKeys(redis, pattern);

  async function metricsText(): Promise<string> {
    const res = await call('GET', '/metrics');
    expect(res.status).toBe(200);
    return res.text;
  }

  const CLASSES = ['latest', 'dashboard', 'device_stats', 'hourly'] as const;
  const STATS_NAME = { latest: 'latest', dashboard: 'dashboard', device_stats: 'deviceStats', hourly: 'hourly' } as const;

  async function counters(): Promise<Record<string, { hits: number; misses: number; statsHits: number; statsMisses: number; ratio: number }>> {
    const text = await metricsText();
    const stats = await ok('/api/cache/stats');
    const out: Record<string, { hits: number; misses: number; statsHits: number; statsMisses: number; ratio: number }> = {};
    for (const c of CLASSES) {
      const s = stats.caches[STATS_NAME[c]];
      out[c] = {
        hits: metricValue(text, 'telemetry_cache_hits_total', { cache: c }),
        misses: metricValue(text, 'telemetry_cache_misses_total', { cache: c }),
        statsHits: s.hits,
        statsMisses: s.misses,
        ratio: s.hitRatio,
      };
    }
    return out;
  }

  beforeAll(async () => {
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.flushdb();
    db = await createTestDatabase('cache_query');
    testApp = await startTestApp({
      DATABASE_URL: db.url,
      REDIS_URL,
      MQTT_URL: undefined,
      MQTT_PORT: String(await freePort()),
      ADMIN_API_KEY: ADMIN_KEY,
    });
    await ingest(d1Samples);
  });

  afterAll(async () => {
    await testApp?.close();
    await db?.drop();
    if (redis) {
      await redis.flushdb();
      await redis.quit();
    }
  });

  describe('routes answer the documented shapes with JSON numbers', () => {
    beforeAll(async () => {
      // A few more devices for paging.
      for (const n of [1, 2, 3, 4]) await ingest([{ deviceId: id(`page-${n}`), metric: 'x', ts: now - 2 * HOUR + n * MIN, value: n }]);
    });

    it('GET /api/devices pages with limit/offset and reports the total', async () => {
      const all = await db.query<{ id: string; first_seen: Date; last_seen: Date }>(`SELECT id, first_seen, last_seen FROM devices ORDER BY id`);
      expect(all.length).toBeGreaterThanOrEqual(5);

      const first = await ok('/api/devices');
      expect(Object.keys(first).sort()).toEqual(['items', 'total']);
      expect(first.total).toBe(all.length);
      expect(typeof first.total).toBe('number');
      expect(first.items.map((d: Json) => d.id)).toEqual(all.map((r) => r.id));
      for (const [i, item] of first.items.entries()) {
        expect(Object.keys(item).sort()).toEqual(['firstSeen', 'id', 'lastSeen', 'status']);
        expect(['online', 'offline']).toContain(item.status);
        expect(item.firstSeen).toBe(all[i].first_seen.toISOString());
        expect(item.lastSeen).toBe(all[i].last_seen.toISOString());
      }

      const page = await ok('/api/devices?limit=2&offset=1');
      expect(page.total).toBe(all.length);
      expect(page.items.map((d: Json) => d.id)).toEqual(all.slice(1, 3).map((r) => r.id));

      const beyond = await ok(`/api/devices?limit=5&offset=${all.length}`);
      expect(beyond).toEqual({ items: [], total: all.length });
    });

    it('GET /api/devices/:id/latest: newest value of each metric and the newest ts', async () => {
      const body = await ok(`/api/devices/${D1}/latest`);
      expect(body).toEqual({ deviceId: D1, ts: iso(base + 3 * HOUR), metrics: { temperature: 30, humidity: 45.5 } });
      expect(typeof body.metrics.temperature).toBe('number');
    });

    it('GET /api/devices/:id/stats: per-metric count/min/max/avg over the last 24 h', async () => {
      await redis.unlink(cacheKeys.stats(D1));
      const body = await ok(`/api/devices/${D1}/stats`);
      const [dev] = await db.query<{ first_seen: Date; last_seen: Date }>(`SELECT first_seen, last_seen FROM devices WHERE id = $1`, [D1]);
      expect(body).toEqual({
        deviceId: D1,
        firstSeen: dev.first_seen.toISOString(),
        lastSeen: dev.last_seen.toISOString(),
        sampleCount: 7,
        metrics: {
          temperature: { count: 5, min: 19, max: 30, avg: (20 + 22 + 25 + 19 + 30) / 5 },
          humidity: { count: 2, min: 40, max: 45.5, avg: (40 + 45.5) / 2 },
        },
      });
      expect(typeof body.sampleCount).toBe('number');
      expect(typeof body.metrics.temperature.count).toBe('number');
      // The cached copy answers the same.
      expect(await ok(`/api/devices/${D1}/stats`)).toEqual(body);
    });

    it('GET /api/devices/:id/aggregates/hourly: buckets match the inserted samples', async () => {
      const body = await ok(`/api/devices/${D1}/aggregates/hourly?metric=temperature&from=${iso(base)}&to=${iso(base + 3 * HOUR)}`);
      expect(body).toEqual({
        deviceId: D1,
        metric: 'temperature',
        buckets: [
          { bucket: iso(base), count: 2, min: 20, max: 22, avg: 21 },
          { bucket: iso(base + HOUR), count: 1, min: 25, max: 25, avg: 25 },
          { bucket: iso(base + 2 * HOUR), count: 1, min: 19, max: 19, avg: 19 },
        ],
      });
      for (const b of body.buckets) for (const k of ['count', 'min', 'max', 'avg']) expect(typeof b[k]).toBe('number');

      // Default range: the last 24 h (the bucket 30 h ago is not in it, the one at base + 3 h is).
      const def = await ok(`/api/devices/${D1}/aggregates/hourly?metric=temperature`);
      expect(def.buckets.map((b: Json) => b.bucket)).toEqual([iso(base), iso(base + HOUR), iso(base + 2 * HOUR), iso(base + 3 * HOUR)]);
      expect(def.buckets[3]).toEqual({ bucket: iso(base + 3 * HOUR), count: 1, min: 30, max: 30, avg: 30 });

      // Cross-check against GROUP BY over samples (docs/api.md Storage).
      const expected = await db.query<{ bucket: Date; count: number; min: number; max: number; avg: number }>(
        `SELECT date_trunc('hour', ts, 'UTC') AS bucket, count(*)::int AS count, min(value) AS min, max(value) AS max, avg(value) AS avg
         FROM samples WHERE device_id = $1 AND metric = 'humidity' AND ts >= $2 AND ts < $3 GROUP BY 1 ORDER BY 1`,
        [D1, iso(base), iso(base + 3 * HOUR)],
      );
      const hum = await ok(`/api/devices/${D1}/aggregates/hourly?metric=humidity&from=${iso(base)}&to=${iso(base + 3 * HOUR)}`);
      expect(hum.buckets).toEqual(expected.map((r) => ({ bucket: r.bucket.toISOString(), count: r.count, min: r.min, max: r.max, avg: r.avg })));

      const none = await ok(`/api/devices/${D1}/aggregates/hourly?metric=nosuchmetric`);
      expect(none).toEqual({ deviceId: D1, metric: 'nosuchmetric', buckets: [] });
    });

    it('GET /api/devices/:id/samples: newest first, limit, metric filter, from/to', async () => {
      const all = await ok(`/api/devices/${D1}/samples`);
      const sorted = [...d1Samples].sort((a, b) => b.ts - a.ts);
      expect(all).toEqual({ items: sorted.map((s) => ({ ts: iso(s.ts), metric: s.metric, value: s.value })) });
      for (const item of all.items) expect(typeof item.value).toBe('number');

      const two = await ok(`/api/devices/${D1}/samples?metric=temperature&limit=2`);
      expect(two.items).toEqual([
        { ts: iso(base + 3 * HOUR), metric: 'temperature', value: 30 },
        { ts: iso(base + 2 * HOUR + 59 * MIN), metric: 'temperature', value: 19 },
      ]);

      const limited = await ok(`/api/devices/${D1}/samples?limit=3`);
      expect(limited.items).toEqual(sorted.slice(0, 3).map((s) => ({ ts: iso(s.ts), metric: s.metric, value: s.value })));

      const range = await ok(`/api/devices/${D1}/samples?from=${iso(base + 15 * MIN)}&to=${iso(base + HOUR + 30 * MIN)}`);
      expect(range.items).toEqual([
        { ts: iso(base + HOUR + 10 * MIN), metric: 'temperature', value: 25 },
        { ts: iso(base + 20 * MIN), metric: 'temperature', value: 22 },
      ]);

      const hum = await ok(`/api/devices/${D1}/samples?metric=humidity&from=${iso(base)}`);
      expect(hum.items).toEqual([
        { ts: iso(base + 2 * HOUR), metric: 'humidity', value: 45.5 },
        { ts: iso(base + 10 * MIN), metric: 'humidity', value: 40 },
      ]);
    });

    it('GET /api/dashboard/metrics: fleet figures as numbers, consistent with the database', async () => {
      await redis.unlink(cacheKeys.dashboard());
      const cur = hourStart(Date.now());
      const body = await ok('/api/dashboard/metrics');
      expect(Object.keys(body).sort()).toEqual(['activeDevices', 'devices', 'ingestRatePerSec', 'samplesLast24h', 'samplesLastHour', 'topDevices']);
      for (const k of ['activeDevices', 'devices', 'ingestRatePerSec', 'samplesLast24h', 'samplesLastHour']) expect(typeof body[k]).toBe('number');

      const [{ devices, active }] = await db.query<{ devices: number; active: number }>(
        `SELECT count(*)::int AS devices, count(*) FILTER (WHERE last_seen > now() - interval '5 minutes')::int AS active FROM devices`,
      );
      expect(body.devices).toBe(devices);
      expect(body.activeDevices).toBe(active);
      // All samples of this file lie either within the last 11 h or 30 h ago, so the pro-rated
      // oldest hour holds none of them and the 24 h figure is exact.
      const [{ day, hour }] = await db.query<{ day: number; hour: number }>(
        `SELECT count(*) FILTER (WHERE ts >= $1)::int AS day, count(*) FILTER (WHERE ts >= $2)::int AS hour FROM samples`,
        [iso(cur - 23 * HOUR), iso(cur)],
      );
      expect(body.samplesLast24h).toBe(day);
      expect(body.samplesLastHour).toBeGreaterThanOrEqual(hour);
      expect(body.samplesLastHour).toBeLessThanOrEqual(body.samplesLast24h);
      expect(body.ingestRatePerSec).toBeCloseTo(body.samplesLastHour / 3600, 2);

      const top = await db.query<{ id: string; samples: number }>(
        `SELECT device_id AS id, count(*)::int AS samples FROM samples WHERE ts >= $1 GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10`,
        [iso(cur - 23 * HOUR)],
      );
      expect(body.topDevices).toEqual(top);
      for (const t of body.topDevices) expect(typeof t.samples).toBe('number');
    });

    it('GET /api/cache/stats: backend redis, key count, memory and per-class counters', async () => {
      const body = await ok('/api/cache/stats');
      expect(Object.keys(body).sort()).toEqual(['backend', 'caches', 'keys', 'memoryBytes']);
      expect(body.backend).toBe('redis');
      expect(body.keys).toBe((await redisKeys('telemetry:*')).length);
      expect(body.keys).toBeGreaterThan(0);
      expect(typeof body.memoryBytes).toBe('number');
      expect(body.memoryBytes).toBeGreaterThan(0);
      expect(Object.keys(body.caches).sort()).toEqual(['dashboard', 'deviceStats', 'hourly', 'latest']);
      for (const c of Object.values(body.caches) as Json[]) {
        expect(Object.keys(c).sort()).toEqual(['hitRatio', 'hits', 'misses']);
        for (const v of Object.values(c)) expect(typeof v).toBe('number');
      }
    });

    it('GET /health reports Redis up', async () => {
      const res = await call('GET', '/health');
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ status: 'ok', checks: { postgres: { status: 'up' }, redis: { status: 'up' } } });
    });
  });

  describe('errors', () => {
    const nope = id('nope');

    it.each([
      ['latest', `/api/devices/${nope}/latest`],
      ['stats', `/api/devices/${nope}/stats`],
      ['hourly', `/api/devices/${nope}/aggregates/hourly?metric=temperature`],
      ['samples', `/api/devices/${nope}/samples`],
    ])('unknown device → 404 on %s, and nothing is cached for it', async (_name, url) => {
      expectError(await call('GET', url), 404);
      expect(await redisKeys(`telemetry:*${nope}*`)).toEqual([]);
    });

    it.each([
      ['limit=0', '/api/devices?limit=0'],
      ['limit=abc', '/api/devices?limit=abc'],
      ['offset=-1', '/api/devices?offset=-1'],
      ['bad device id', '/api/devices/bad%20id/latest'],
      ['device id too long', `/api/devices/${'x'.repeat(65)}/stats`],
      ['hourly without metric', `/api/devices/${D1}/aggregates/hourly`],
      ['hourly bad metric', `/api/devices/${D1}/aggregates/hourly?metric=a%20b`],
      ['hourly bad from', `/api/devices/${D1}/aggregates/hourly?metric=t&from=yesterday`],
      ['hourly from after to', `/api/devices/${D1}/aggregates/hourly?metric=t&from=2026-11-21T10:00:00Z&to=2026-11-21T09:00:00Z`],
      ['samples limit too high', `/api/devices/${D1}/samples?limit=10001`],
      ['samples bad to', `/api/devices/${D1}/samples?to=12345`],
      ['samples repeated limit', `/api/devices/${D1}/samples?limit=1&limit=2`],
    ])('invalid parameter (%s) → 400 {statusCode, message}', async (_name, url) => {
      expectError(await call('GET', url), 400);
    });

    it('POST /api/cache/clear with a bad pattern or malformed JSON → 400', async () => {
      expectError(await call('POST', '/api/cache/clear', { key: ADMIN_KEY, payload: { pattern: 'other:*' } }), 400);
      expectError(await call('POST', '/api/cache/clear', { key: ADMIN_KEY, payload: { pattern: '*' } }), 400);
      expectError(await call('POST', '/api/cache/clear', { key: ADMIN_KEY, payload: '{"pattern": ', headers: { 'content-type': 'application/json' } }), 400);
    });

    it('an unknown route answers 404 in the same shape', async () => {
      expectError(await call('GET', '/api/nothing-here'), 404);
    });
  });

  describe('admin routes', () => {
    it.each([
      ['without a key', undefined],
      ['with a wrong key', 'wrong-key'],
      ['with the key plus a suffix', `${ADMIN_KEY}x`],
      ['with an empty key', ''],
    ])('answer 403 %s and change nothing', async (_name, key) => {
      const device = id(`guarded-${Math.random().toString(36).slice(2, 6)}`);
      await ingest([{ deviceId: device, metric: 't', ts: now - HOUR, value: 1 }]);
      const options = key === undefined ? {} : { key };
      expectError(await call('DELETE', `/api/devices/${device}`, options), 403);
      expectError(await call('POST', '/api/cache/clear', options), 403);
      expect(await db.query(`SELECT 1 FROM devices WHERE id = $1`, [device])).toHaveLength(1);
      expect(await redis.exists(cacheKeys.latest(device))).toBe(1);
    });

    it('answer 403 even with a key when ADMIN_API_KEY is unset', async () => {
      const other = await startTestApp({ DATABASE_URL: db.url, MQTT_URL: undefined, MQTT_PORT: String(await freePort()) });
      try {
        for (const req of [
          { method: 'DELETE' as const, url: `/api/devices/${D1}` },
          { method: 'POST' as const, url: '/api/cache/clear' },
        ]) {
          for (const headers of [{}, { 'x-api-key': ADMIN_KEY }, { 'x-api-key': '' }]) {
            const res = await other.app.inject({ ...req, headers });
            expect(res.statusCode).toBe(403);
            const body = res.json();
            expect(body.statusCode).toBe(403);
            expect(typeof body.message).toBe('string');
          }
        }
      } finally {
        await other.close();
      }
      expect(await db.query(`SELECT 1 FROM devices WHERE id = $1`, [D1])).toHaveLength(1);
    });

    it('POST /api/cache/clear empties the four cache classes by default, with SCAN and never KEYS', async () => {
      // Fill every class, plus telemetry: keys of other kinds and a foreign key that must survive.
      await ok(`/api/devices/${D1}/latest`);
      await ok(`/api/devices/${D1}/stats`);
      await ok(`/api/devices/${D1}/aggregates/hourly?metric=temperature`);
      await ok('/api/dashboard/metrics');
      await redis.set('telemetry:ratelimit:cache-query-test', '5', 'EX', 600);
      await redis.set('foreign:key', 'x', 'EX', 600);
      const classKeys = [
        ...(await redisKeys('telemetry:latest:*')),
        ...(await redisKeys('telemetry:stats:*')),
        ...(await redisKeys('telemetry:hourly:*')),
        ...(await redisKeys('telemetry:dashboard')),
      ];
      expect(classKeys).toEqual(expect.arrayContaining([cacheKeys.latest(D1), cacheKeys.stats(D1), cacheKeys.dashboard()]));
      expect(classKeys.some((k) => k.startsWith('telemetry:hourly:'))).toBe(true);

      const monitor = await redis.monitor();
      const commands: string[] = [];
      monitor.on('monitor', (_time: string, args: string[], _source: string, database: string) => {
        if (database === '11') commands.push(String(args[0]).toLowerCase());
      });
      try {
        const res = await call('POST', '/api/cache/clear', { key: ADMIN_KEY });
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ cleared: classKeys.length });
        await new Promise((resolve) => setTimeout(resolve, 100));
      } finally {
        monitor.disconnect();
      }
      expect(commands).toContain('scan');
      expect(commands).not.toContain('keys');

      expect(await redisKeys('telemetry:latest:*')).toEqual([]);
      expect(await redisKeys('telemetry:stats:*')).toEqual([]);
      expect(await redisKeys('telemetry:hourly:*')).toEqual([]);
      expect(await redis.exists(cacheKeys.dashboard())).toBe(0);
      expect(await redis.get('telemetry:ratelimit:cache-query-test')).toBe('5');
      expect(await redis.get('foreign:key')).toBe('x');

      // Answers are the same after the clear (loaded again).
      expect(await ok(`/api/devices/${D1}/latest`)).toEqual({ deviceId: D1, ts: iso(base + 3 * HOUR), metrics: { temperature: 30, humidity: 45.5 } });
      await redis.unlink('telemetry:ratelimit:cache-query-test', 'foreign:key');
    });

    it('POST /api/cache/clear with a pattern clears only that pattern', async () => {
      await ok(`/api/devices/${D1}/latest`);
      await ok(`/api/devices/${D1}/stats`);
      const latestKeys = await redisKeys('telemetry:latest:*');
      expect(latestKeys.length).toBeGreaterThan(0);
      const res = await call('POST', '/api/cache/clear', { key: ADMIN_KEY, payload: { pattern: 'telemetry:latest:*' } });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ cleared: latestKeys.length });
      expect(typeof res.body.cleared).toBe('number');
      expect(await redisKeys('telemetry:latest:*')).toEqual([]);
      expect(await redis.exists(cacheKeys.stats(D1))).toBe(1);

      const again = await call('POST', '/api/cache/clear', { key: ADMIN_KEY, payload: { pattern: 'telemetry:latest:*' } });
      expect(again.body).toEqual({ cleared: 0 });
    });

    it('DELETE /api/devices/:id removes its rows in all three tables and its cache entries; a second DELETE is 404', async () => {
      const victim = id('victim');
      const samples: Sample[] = [];
      for (let i = 0; i < 60; i++) samples.push({ deviceId: victim, metric: i % 2 ? 'a' : 'b', ts: base + i * MIN * 7, value: i });
      await ingest(samples);
      await ingest([{ deviceId: id('bystander'), metric: 'a', ts: base, value: 1 }]);
      // Warm every cache class for the victim.
      await ok(`/api/devices/${victim}/latest`);
      await ok(`/api/devices/${victim}/stats`);
      await ok(`/api/devices/${victim}/aggregates/hourly?metric=a`);
      await ok(`/api/devices/${victim}/aggregates/hourly?metric=b&from=${iso(base)}`);
      await redis.unlink(cacheKeys.dashboard());
      const dashBefore = await ok('/api/dashboard/metrics');
      expect(dashBefore.topDevices.map((t: Json) => t.id)).toContain(victim);
      const victimKeys = await redisKeys(`telemetry:*${victim}*`);
      expect(victimKeys.length).toBeGreaterThanOrEqual(4);

      const res = await call('DELETE', `/api/devices/${victim}`, { key: ADMIN_KEY });
      expect(res.status).toBe(204);
      expect(res.text).toBe('');

      for (const table of ['samples', 'hourly_aggregates', 'minute_aggregates']) {
        expect(await db.query(`SELECT 1 FROM ${table} WHERE device_id = $1`, [victim])).toHaveLength(0);
      }
      expect(await db.query(`SELECT 1 FROM devices WHERE id = $1`, [victim])).toHaveLength(0);
      expect(await db.query(`SELECT 1 FROM samples WHERE device_id = $1`, [id('bystander')])).toHaveLength(1);
      expect(await redisKeys(`telemetry:*${victim}*`)).toEqual([]);
      expect(await redis.exists(cacheKeys.latest(id('bystander')))).toBe(1);

      for (const url of [
        `/api/devices/${victim}/latest`,
        `/api/devices/${victim}/stats`,
        `/api/devices/${victim}/aggregates/hourly?metric=a`,
        `/api/devices/${victim}/samples`,
      ]) {
        expectError(await call('GET', url), 404);
      }
      const dashAfter = await ok('/api/dashboard/metrics');
      expect(dashAfter.topDevices.map((t: Json) => t.id)).not.toContain(victim);
      expect(dashAfter.devices).toBe(dashBefore.devices - 1);

      expectError(await call('DELETE', `/api/devices/${victim}`, { key: ADMIN_KEY }), 404);
      expectError(await call('DELETE', '/api/devices/bad%20id', { key: ADMIN_KEY }), 400);
    });
  });

  describe('cache behaviour', () => {
    it('each class is stored under its contract key with its TTL (latest 10, dashboard 300, stats 900, hourly 600)', async () => {
      const dev = id('ttl');
      await ingest([{ deviceId: dev, metric: 't', ts: now - HOUR, value: 1 }]);
      await redis.unlink(cacheKeys.dashboard());
      await ok(`/api/devices/${dev}/latest`);
      await ok(`/api/devices/${dev}/stats`);
      await ok(`/api/devices/${dev}/aggregates/hourly?metric=t`);
      await ok('/api/dashboard/metrics');
      const hourlyKeys = await redisKeys(`telemetry:hourly:*${dev}*`);
      expect(hourlyKeys).toHaveLength(1);
      const expected: Array<[string, number]> = [
        [cacheKeys.latest(dev), 10],
        [cacheKeys.dashboard(), 300],
        [cacheKeys.stats(dev), 900],
        [hourlyKeys[0], 600],
      ];
      expect(cacheKeys.latest(dev)).toMatch(new RegExp(`^telemetry:latest:.*${dev}`));
      expect(cacheKeys.stats(dev)).toMatch(new RegExp(`^telemetry:stats:.*${dev}`));
      expect(cacheKeys.dashboard()).toBe('telemetry:dashboard');
      for (const [key, ttl] of expected) {
        const left = await redis.ttl(key);
        expect({ key, left }).toEqual({ key, left: expect.any(Number) });
        expect([key, left >= ttl - 2 && left <= ttl]).toEqual([key, true]);
      }
    });

    it('latest never moves backwards: a late older sample does not replace a newer one', async () => {
      const dev = id('late');
      const t2 = now - 20 * MIN;
      const t1 = now - 40 * MIN;
      await ingest([{ deviceId: dev, metric: 't', ts: t2, value: 2 }]);
      await ingest([
        { deviceId: dev, metric: 't', ts: t1, value: 1 },
        { deviceId: dev, metric: 'h', ts: t1, value: 50 },
      ]);
      expect(await ok(`/api/devices/${dev}/latest`)).toEqual({ deviceId: dev, ts: iso(t2), metrics: { t: 2, h: 50 } });

      // Both in one batch, out of order.
      const t3 = now - 10 * MIN;
      await ingest([
        { deviceId: dev, metric: 't', ts: t3, value: 3 },
        { deviceId: dev, metric: 't', ts: t1 + 1, value: -1 },
      ]);
      expect((await ok(`/api/devices/${dev}/latest`)).metrics.t).toBe(3);

      // Expired cache: the database fallback also answers the newest, whatever the insert order.
      await redis.unlink(cacheKeys.latest(dev));
      expect(await ok(`/api/devices/${dev}/latest`)).toEqual({ deviceId: dev, ts: iso(t3), metrics: { t: 3, h: 50 } });
      // And the reloaded entry keeps merging forwards only.
      await testApp.get(CacheService).recordLatest([{ deviceId: dev, metric: 't', ts: t1, value: 0 }]);
      expect((await ok(`/api/devices/${dev}/latest`)).metrics.t).toBe(3);
    });

    it('latest from the database when nothing was cached for a device (written without the cache)', async () => {
      const dev = id('dbonly');
      await ingest(
        [
          { deviceId: dev, metric: 'b', ts: now - 3 * MIN, value: 7 },
          { deviceId: dev, metric: 'a', ts: now - 2 * MIN, value: 1.25 },
          { deviceId: dev, metric: 'a', ts: now - 5 * MIN, value: 9 },
        ],
        false,
      );
      expect(await redis.exists(cacheKeys.latest(dev))).toBe(0);
      expect(await ok(`/api/devices/${dev}/latest`)).toEqual({ deviceId: dev, ts: iso(now - 2 * MIN), metrics: { a: 1.25, b: 7 } });
      expect(await redis.exists(cacheKeys.latest(dev))).toBe(1);
    });

    it("after the latest entry expired, a sample of one metric does not hide the device's other metrics", async () => {
      const dev = id('partial');
      await ingest([
        { deviceId: dev, metric: 't', ts: now - 5 * MIN, value: 1 },
        { deviceId: dev, metric: 'h', ts: now - 5 * MIN, value: 60 },
      ]);
      expect((await ok(`/api/devices/${dev}/latest`)).metrics).toEqual({ t: 1, h: 60 });
      // The device was silent for longer than the 10 s TTL: its entry is gone.
      await redis.unlink(cacheKeys.latest(dev));
      // It reports again, this time only one of its metrics (docs/api.md Ingestion allows 1 to 100 per sample).
      await ingest([{ deviceId: dev, metric: 't', ts: now - MIN, value: 2 }]);
      expect(await ok(`/api/devices/${dev}/latest`)).toEqual({ deviceId: dev, ts: iso(now - MIN), metrics: { t: 2, h: 60 } });
    });

    it("metrics named like Object.prototype members ('constructor', '__proto__', 'toString') are answered like any other", async () => {
      const dev = id('proto');
      const ts = now - 5 * MIN;
      await ingest([
        { deviceId: dev, metric: 'constructor', ts, value: 1 },
        { deviceId: dev, metric: '__proto__', ts, value: 2 },
        { deviceId: dev, metric: 'toString', ts, value: 3 },
      ]);
      const own = (o: Json, k: string) => Object.getOwnPropertyDescriptor(o, k)?.value;
      const cached = (await ok(`/api/devices/${dev}/latest`)).metrics;
      await redis.unlink(cacheKeys.latest(dev));
      const fromDb = (await ok(`/api/devices/${dev}/latest`)).metrics;
      const stats = (await ok(`/api/devices/${dev}/stats`)).metrics;
      // Computed ['__proto__'] keys: a literal __proto__: would set the prototype instead of a property.
      const seen = (o: Json) => ({
        keys: Object.keys(o).sort(),
        constructor: own(o, 'constructor'),
        ['__proto__']: own(o, '__proto__'),
        toString: own(o, 'toString'),
      });
      expect({ cached: seen(cached), fromDb: seen(fromDb), stats: seen(stats) }).toEqual({
        cached: { keys: ['__proto__', 'constructor', 'toString'], constructor: 1, ['__proto__']: 2, toString: 3 },
        fromDb: { keys: ['__proto__', 'constructor', 'toString'], constructor: 1, ['__proto__']: 2, toString: 3 },
        stats: {
          keys: ['__proto__', 'constructor', 'toString'],
          constructor: { count: 1, min: 1, max: 1, avg: 1 },
          ['__proto__']: { count: 1, min: 2, max: 2, avg: 2 },
          toString: { count: 1, min: 3, max: 3, avg: 3 },
        },
      });
    });

    it('hits and misses are counted per class in /metrics and /api/cache/stats', async () => {
      const dev = id('hits');
      await ingest([{ deviceId: dev, metric: 't', ts: now - HOUR, value: 1 }]);
      const before = await counters();
      await redis.unlink(cacheKeys.latest(dev), cacheKeys.stats(dev), cacheKeys.dashboard());
      for (const url of [
        `/api/devices/${dev}/latest`,
        `/api/devices/${dev}/stats`,
        `/api/devices/${dev}/aggregates/hourly?metric=t&from=${iso(base)}&to=${iso(base + 5 * HOUR)}`,
        '/api/dashboard/metrics',
      ]) {
        await ok(url); // miss
        await ok(url); // hit
        await ok(url); // hit
      }
      const after = await counters();
      for (const c of CLASSES) {
        expect({ c, hits: after[c].hits - before[c].hits, misses: after[c].misses - before[c].misses }).toEqual({ c, hits: 2, misses: 1 });
        expect({ c, hits: after[c].statsHits, misses: after[c].statsMisses }).toEqual({ c, hits: after[c].hits, misses: after[c].misses });
        expect(after[c].ratio).toBeCloseTo(after[c].hits / (after[c].hits + after[c].misses), 10);
      }
    });

    it('the hourly route with its default range (no from/to, or from only) is served from the cache when repeated', async () => {
      const dev = id('hourly-default');
      await ingest([{ deviceId: dev, metric: 't', ts: now - HOUR, value: 1 }]);
      const misses = async () => metricValue(await metricsText(), 'telemetry_cache_misses_total', { cache: 'hourly' });
      const keysBefore = (await redisKeys(`telemetry:hourly:*${dev}*`)).length;
      const before = await misses();
      for (let i = 0; i < 3; i++) {
        await ok(`/api/devices/${dev}/aggregates/hourly?metric=t`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      for (let i = 0; i < 3; i++) {
        await ok(`/api/devices/${dev}/aggregates/hourly?metric=t&from=${iso(base)}`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const keysAfter = (await redisKeys(`telemetry:hourly:*${dev}*`)).length;
      // One load per distinct query, then hits; not one new key (and one database query) per request.
      expect({ misses: (await misses()) - before, newKeys: keysAfter - keysBefore }).toEqual({ misses: 2, newKeys: 2 });
    });

    it('50 concurrent cold requests for one device run the stats loader once', async () => {
      const dev = id('herd-stats');
      await ingest([{ deviceId: dev, metric: 't', ts: now - HOUR, value: 4 }], false);
      const queries = testApp.get(TelemetryQueries);
      const spy = jest.spyOn(queries, 'stats');
      try {
        const replies = await Promise.all(
          Array.from({ length: 50 }, () =>
            fetch(`${testApp.baseUrl}/api/devices/${dev}/stats`).then(async (r) => ({ status: r.status, body: (await r.json()) as Json })),
          ),
        );
        expect(replies.map((r) => r.status)).toEqual(Array(50).fill(200));
        for (const r of replies) expect(r.body).toEqual(replies[0].body);
        expect(replies[0].body.metrics).toEqual({ t: { count: 1, min: 4, max: 4, avg: 4 } });
        expect(spy).toHaveBeenCalledTimes(1);
      } finally {
        spy.mockRestore();
      }
    });

    it('50 concurrent cold requests for one device run the latest loader once', async () => {
      const dev = id('herd-latest');
      await ingest([{ deviceId: dev, metric: 't', ts: now - MIN, value: 8 }], false);
      const queries = testApp.get(TelemetryQueries);
      const spy = jest.spyOn(queries, 'latest');
      try {
        const replies = await Promise.all(
          Array.from({ length: 50 }, () =>
            fetch(`${testApp.baseUrl}/api/devices/${dev}/latest`).then(async (r) => ({ status: r.status, body: (await r.json()) as Json })),
          ),
        );
        expect(replies.map((r) => r.status)).toEqual(Array(50).fill(200));
        for (const r of replies) expect(r.body).toEqual({ deviceId: dev, ts: iso(now - MIN), metrics: { t: 8 } });
        expect(spy).toHaveBeenCalledTimes(1);
      } finally {
        spy.mockRestore();
      }
    });

    it('http_request_duration_seconds is labelled with the route template, not the raw URL', async () => {
      await ok(`/api/devices/${D1}/latest`);
      await call('GET', `/api/devices/${id('nope2')}/latest`);
      const text = await metricsText();
      expect(
        metricValue(text, 'http_request_duration_seconds_count', { method: 'GET', route: '/api/devices/:id/latest', status_code: '200' }),
      ).toBeGreaterThanOrEqual(1);
      expect(
        metricValue(text, 'http_request_duration_seconds_count', { method: 'GET', route: '/api/devices/:id/latest', status_code: '404' }),
      ).toBeGreaterThanOrEqual(1);
      const routeLabels = new Set([...text.matchAll(/^http_request_duration_seconds_count\{[^}]*route="([^"]*)"/gm)].map((m) => m[1]));
      expect(routeLabels).toContain('/api/devices/:id/stats');
      for (const route of routeLabels) expect(route).not.toContain(run);
    });
  });
});
