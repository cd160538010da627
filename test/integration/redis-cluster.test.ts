// Redis Cluster (docs/api.md Configuration REDIS_CLUSTER_NODES, §4 cache keys, §5 fan-out
// and rate limit) against a REAL 3-master cluster of the test's own
// (test/support/private-redis-cluster.ts: free ports, no replicas).
//
// Two app instances in-process, each with its own embedded MQTT broker
// (MQTT_URL unset, MQTT_PORT=0), on one throw-away PostgreSQL database, both
// with REDIS_CLUSTER_NODES and no REDIS_URL. Every claim is checked from
// outside the service through a separate ioredis Cluster client: the exact key
// names of §4 exist on the cluster with their TTLs, keys of many devices are
// spread over several masters (so multi-device writes cross hash slots),
// and clear/invalidate remove them on every master.
//
// Last, one master is SIGKILLed (no replica can take over, so its slots stay
// down and the cluster soon reports cluster_state:fail): every route must
// still answer (memory cache + PostgreSQL) and /health must say degraded;
// once it is started again both instances return to the cluster by themselves.
//
// Nest's static Logger writes to the last-created app's logs (B), so "no
// warning" checks read A's and B's logs together.
import type { Cluster } from 'ioredis';
import { cacheKeys } from '../../src/redis/redis-names';
import { CacheService } from '../../src/cache/cache.service';
import { SampleWriter } from '../../src/storage/sample-writer';
import { scanKeys } from '../support/redis-keys';
import { metricValue } from '../support/app-process';
import { waitFor } from '../support/free-port';
import { PrivateRedisCluster } from '../support/private-redis-cluster';
import { publishAll, telemetryTopic } from '../support/publisher';
import { describeWithServers } from '../support/servers';
import { type EmbeddedInstance, startEmbeddedInstance, stopEmbeddedInstance } from '../support/embedded-instance';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { type Frame, WsTestClient } from '../support/ws-client';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const ADMIN_KEY = 'redis-cluster-admin-key';
const HOUR = 3_600_000;
const DEVICES = 50;

type Instance = EmbeddedInstance;

const iso = (ms: number) => new Date(ms).toISOString();

const startInstance = (env: Record<string, string | undefined>, deviceClientId: string) =>
  startEmbeddedInstance({ REDIS_URL: undefined, ...env }, deviceClientId);
const stopInstance = stopEmbeddedInstance;

describeWithServers(['postgres'])('Redis Cluster: cache, fan-out and rate limit across two instances', () => {
  const run = Math.random().toString(36).slice(2, 8);
  let cluster: PrivateRedisCluster;
  let redis: Cluster;
  let db: TestDatabase;
  let a: Instance;
  let b: Instance;
  const clients: WsTestClient[] = [];
  const deviceIds = Array.from({ length: DEVICES }, (_, i) => `rc-${run}-${String(i).padStart(2, '0')}`);
  // Hour-aligned so the hourly cache key is known exactly.
  const hourEnd = Math.floor(Date.now() / HOUR) * HOUR;
  const from = hourEnd - 3 * HOUR;
  const to = hourEnd;
  const baseTs = from + 10 * 60_000;

  async function get(instance: Instance, url: string): Promise<{ status: number; body: Json; ms: number }> {
    const started = performance.now();
    const res = await instance.app.app.inject({ method: 'GET', url });
    return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined, ms: performance.now() - started };
  }

  async function metric(instance: Instance, name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricValue((await instance.app.app.inject({ method: 'GET', url: '/metrics' })).body, name, labels);
  }

  /** SCAN on every master of the cluster: pattern → keys found per master port. */
  async function keysPerMaster(pattern: string): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>();
    for (const node of redis.nodes('master')) out.set(node.options.port as number, await scanKeys(node, pattern));
    return out;
  }

  const allKeys = async (pattern: string) => [...(await keysPerMaster(pattern)).values()].flat().sort();
  const warnings = (text: string) => [...a.app.logs, ...b.app.logs].filter((line) => line.includes(text));

  async function connect(instance: Instance): Promise<WsTestClient> {
    const client = await WsTestClient.connect(instance.wsUrl);
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    // Assigned as each is ready, so afterAll cleans up whatever started even if the other failed.
    await Promise.all([PrivateRedisCluster.start().then((c) => (cluster = c)), createTestDatabase('redis_cluster').then((d) => (db = d))]);
    redis = await cluster.connect();
    const env = {
      DATABASE_URL: db.url,
      REDIS_CLUSTER_NODES: cluster.nodesEnv,
      ADMIN_API_KEY: ADMIN_KEY,
      // One token per 6 s: the 100 messages of the rate-limit test refill nothing measurable.
      WS_RATE_LIMIT: '100',
      WS_RATE_WINDOW_S: '600',
    };
    a = await startInstance({ ...env, INSTANCE_ID: `rc-a-${run}` }, `rc-dev-a-${run}`);
    b = await startInstance({ ...env, INSTANCE_ID: `rc-b-${run}` }, `rc-dev-b-${run}`);
  }, 60_000);

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await stopInstance(a);
    await stopInstance(b);
    // disconnect, not quit: a QUIT to a dead master (if the restart failed) would only fail.
    redis?.disconnect();
    await cluster?.destroy();
    await db?.drop();
  }, 30_000);

  it('both instances serve the cache from Redis and report it up in /health', async () => {
    for (const instance of [a, b]) {
      expect((await get(instance, '/api/cache/stats')).body.backend).toBe('redis');
      const health = await get(instance, '/health');
      expect(health.status).toBe(200);
      expect(health.body.status).toBe('ok');
      expect(health.body.checks.redis.status).toBe('up');
      expect(await metric(instance, 'telemetry_cache_backend_up')).toBe(1);
    }
  });

  it(`a committed batch over ${DEVICES} devices writes every device's telemetry:latest:{id} on the cluster, spread over several masters`, async () => {
    // All at once: the embedded source hands them to the batcher together, so batches span many devices (many slots).
    await publishAll(
      a.device,
      deviceIds.map((id, i) => ({ topic: telemetryTopic(id), payload: JSON.stringify({ ts: baseTs, metrics: { temperature: i + 0.5, humidity: 40 } }) })),
    );
    const batches = await metric(a, 'telemetry_ingest_batch_size_count');
    // Every latest key appears (written after commit, asynchronously to the PUBACK).
    await waitFor(async () => (await allKeys('telemetry:latest:*')).length === DEVICES, 5000, `${DEVICES} latest keys on the cluster`);
    const perMaster = await keysPerMaster('telemetry:latest:*');
    const mastersUsed = [...perMaster.values()].filter((keys) => keys.length > 0).length;
    expect(mastersUsed).toBeGreaterThan(1);
    expect(await allKeys('telemetry:latest:*')).toEqual(deviceIds.map((id) => cacheKeys.latest(id)).sort());
    for (const [i, id] of deviceIds.entries()) {
      const key = `telemetry:latest:{${id}}`;
      const hash = await redis.hgetall(key);
      expect({ key, temperature: hash.temperature, humidity: hash.humidity }).toEqual({ key, temperature: `${baseTs}|${i + 0.5}`, humidity: `${baseTs}|40` });
      const pttl = await redis.pttl(key);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(10_000);
    }
    expect(warnings('latest cache update failed')).toEqual([]);
    expect(warnings('CROSSSLOT')).toEqual([]);
    // A failed cache write falls back to memory silently but marks Redis down: it never did.
    expect(warnings('Redis down')).toEqual([]);
    expect(await metric(a, 'telemetry_cache_backend_up')).toBe(1);

    // The same path in one call, deterministically one batch: newer values for all 50 devices at once
    // (committed first, as ingestion does, so cache and database agree).
    const samples = deviceIds.map((deviceId, i) => ({ deviceId, metric: 'temperature', ts: baseTs + 60_000, value: 100 + i }));
    const seen = Date.now();
    await a.app.get(SampleWriter).write(
      samples,
      deviceIds.map((deviceId) => ({ deviceId, firstSeenMs: seen, lastSeenMs: seen })),
    );
    await a.app.get(CacheService).recordLatest(samples);
    for (const [i, id] of deviceIds.entries()) expect((await redis.hget(cacheKeys.latest(id), 'temperature')) ?? '').toBe(`${baseTs + 60_000}|${100 + i}`);
    expect(a.app.get(CacheService).backend).toBe('redis');
    console.log(
      `[redis-cluster] ${DEVICES} devices' latest keys on ${mastersUsed} of 3 masters (${[...perMaster.values()].map((k) => k.length).join('/')}); ` +
        `${batches} committed batches for ${DEVICES} messages`,
    );
  });

  it('stats, hourly and dashboard entries land on the cluster under their §4 names and TTLs, and B is served from them', async () => {
    const id = deviceIds[0];
    // Completes the latest entry from the database (first read), then B reads it as a hit.
    const latestA = await get(a, `/api/devices/${id}/latest`);
    expect(latestA.body).toEqual({ deviceId: id, ts: iso(baseTs + 60_000), metrics: { temperature: 100, humidity: 40 } });
    expect(await redis.hget(cacheKeys.latest(id), '~complete')).toBe('1');

    const stats = await get(a, `/api/devices/${id}/stats`);
    expect(stats.status).toBe(200);
    expect(JSON.parse((await redis.get(`telemetry:stats:{${id}}`)) ?? 'null')).toEqual(stats.body);
    const statsTtl = await redis.ttl(`telemetry:stats:{${id}}`);
    expect(statsTtl).toBeGreaterThan(800);
    expect(statsTtl).toBeLessThanOrEqual(900);

    const hourly = await get(a, `/api/devices/${id}/aggregates/hourly?metric=temperature&from=${iso(from)}&to=${iso(to)}`);
    expect(hourly.status).toBe(200);
    expect(hourly.body.buckets).toHaveLength(1);
    const hourlyKey = `telemetry:hourly:{${id}}:temperature:${from}:${to}`;
    expect(hourlyKey).toBe(cacheKeys.hourly(id, 'temperature', from, to));
    expect(JSON.parse((await redis.get(hourlyKey)) ?? 'null')).toEqual(hourly.body.buckets);
    const hourlyTtl = await redis.ttl(hourlyKey);
    expect(hourlyTtl).toBeGreaterThan(500);
    expect(hourlyTtl).toBeLessThanOrEqual(600);

    const dashboard = await get(a, '/api/dashboard/metrics');
    expect(dashboard.body.devices).toBe(DEVICES);
    expect(JSON.parse((await redis.get('telemetry:dashboard')) ?? 'null')).toEqual(dashboard.body);
    const dashboardTtl = await redis.ttl('telemetry:dashboard');
    expect(dashboardTtl).toBeGreaterThan(200);
    expect(dashboardTtl).toBeLessThanOrEqual(300);

    // B answers the same from the shared cache: hits, no misses.
    const before = {
      hits: await metric(b, 'telemetry_cache_hits_total', { cache: 'device_stats' }),
      misses: await metric(b, 'telemetry_cache_misses_total', { cache: 'device_stats' }),
      latestHits: await metric(b, 'telemetry_cache_hits_total', { cache: 'latest' }),
      hourlyHits: await metric(b, 'telemetry_cache_hits_total', { cache: 'hourly' }),
      dashboardHits: await metric(b, 'telemetry_cache_hits_total', { cache: 'dashboard' }),
    };
    expect((await get(b, `/api/devices/${id}/stats`)).body).toEqual(stats.body);
    expect((await get(b, `/api/devices/${id}/latest`)).body).toEqual(latestA.body);
    expect((await get(b, `/api/devices/${id}/aggregates/hourly?metric=temperature&from=${iso(from)}&to=${iso(to)}`)).body).toEqual(hourly.body);
    expect((await get(b, '/api/dashboard/metrics')).body).toEqual(dashboard.body);
    expect({
      hits: await metric(b, 'telemetry_cache_hits_total', { cache: 'device_stats' }),
      misses: await metric(b, 'telemetry_cache_misses_total', { cache: 'device_stats' }),
      latestHits: await metric(b, 'telemetry_cache_hits_total', { cache: 'latest' }),
      hourlyHits: await metric(b, 'telemetry_cache_hits_total', { cache: 'hourly' }),
      dashboardHits: await metric(b, 'telemetry_cache_hits_total', { cache: 'dashboard' }),
    }).toEqual({
      hits: before.hits + 1,
      misses: before.misses,
      latestHits: before.latestHits + 1,
      hourlyHits: before.hourlyHits + 1,
      dashboardHits: before.dashboardHits + 1,
    });
    // /api/cache/stats counts keys on every master.
    const total = (await allKeys('telemetry:*')).length;
    expect((await get(b, '/api/cache/stats')).body.keys).toBe(total);
  });

  it("DELETE on A: B answers 404 and none of the device's keys is left on the cluster", async () => {
    const id = deviceIds[1];
    expect((await get(b, `/api/devices/${id}/latest`)).status).toBe(200);
    expect((await get(b, `/api/devices/${id}/stats`)).status).toBe(200);
    expect((await get(b, `/api/devices/${id}/aggregates/hourly?metric=temperature&from=${iso(from)}&to=${iso(to)}`)).status).toBe(200);
    const keysBefore = await allKeys(`telemetry:*{${id}}*`);
    expect(keysBefore).toEqual([cacheKeys.latest(id), cacheKeys.stats(id), cacheKeys.hourly(id, 'temperature', from, to)].sort());

    const del = await a.app.app.inject({ method: 'DELETE', url: `/api/devices/${id}`, headers: { 'x-api-key': ADMIN_KEY } });
    expect(del.statusCode).toBe(204);
    expect(await allKeys(`telemetry:*{${id}}*`)).toEqual([]);
    expect(await redis.exists(keysBefore)).toBe(0);
    for (const url of [`/api/devices/${id}/latest`, `/api/devices/${id}/stats`, `/api/devices/${id}/aggregates/hourly?metric=temperature`]) {
      expect({ url, status: (await get(b, url)).status }).toEqual({ url, status: 404 });
    }
  });

  it('POST /api/cache/clear removes the cache keys on every master', async () => {
    // Warm entries of every class over many devices (so every master holds some).
    for (const id of deviceIds.slice(2)) await get(b, `/api/devices/${id}/stats`);
    await get(b, '/api/dashboard/metrics');
    const before = await keysPerMaster('telemetry:*');
    const cacheKeysBefore = [...before.values()].flat().filter((k) => !k.startsWith('telemetry:ratelimit:'));
    expect([...before.values()].every((keys) => keys.length > 0)).toBe(true);

    const clear = await a.app.app.inject({ method: 'POST', url: '/api/cache/clear', headers: { 'x-api-key': ADMIN_KEY } });
    expect(clear.statusCode).toBe(200);
    expect(clear.json().cleared).toBe(cacheKeysBefore.length);
    for (const pattern of ['telemetry:latest:*', 'telemetry:stats:*', 'telemetry:hourly:*', 'telemetry:dashboard']) {
      expect({ pattern, keys: await allKeys(pattern) }).toEqual({ pattern, keys: [] });
    }
    // And the next read is a miss that refills it.
    const misses = await metric(b, 'telemetry_cache_misses_total', { cache: 'device_stats' });
    expect((await get(b, `/api/devices/${deviceIds[2]}/stats`)).status).toBe(200);
    expect(await metric(b, 'telemetry_cache_misses_total', { cache: 'device_stats' })).toBe(misses + 1);
    expect(await redis.exists(cacheKeys.stats(deviceIds[2]))).toBe(1);
  });

  it("a sample ingested by A reaches a WebSocket client on B through the cluster's pub/sub (and B → A)", async () => {
    const fromA = `rc-ws-a-${run}`;
    const fromB = `rc-ws-b-${run}`;
    const onB = await connect(b);
    const onA = await connect(a);
    expect((await onB.request('subscribe', { deviceId: '*' })).event).toBe('subscribed');
    expect((await onA.request('subscribe', { deviceId: fromB })).event).toBe('subscribed');

    const tsA = Date.now() - 1000;
    await a.device.publishAsync(telemetryTopic(fromA), JSON.stringify({ ts: tsA, metrics: { temperature: 7.25 } }), { qos: 1 });
    const sample = await onB.next((f: Frame) => f.event === 'sample' && f.data.deviceId === fromA, 5000, 'the sample ingested by A, on B');
    expect(sample.data).toEqual({ deviceId: fromA, ts: iso(tsA), metrics: { temperature: 7.25 } });

    const tsB = Date.now() - 500;
    await b.device.publishAsync(telemetryTopic(fromB), JSON.stringify({ ts: tsB, metrics: { humidity: 3 } }), { qos: 1 });
    const back = await onA.next((f: Frame) => f.event === 'sample' && f.data.deviceId === fromB, 5000, 'the sample ingested by B, on A');
    expect(back.data).toEqual({ deviceId: fromB, ts: iso(tsB), metrics: { humidity: 3 } });
  });

  it('the rate-limit bucket is shared through the cluster: 60 on A + 40 on B pass, the next is RATE_LIMITED; key telemetry:ratelimit:{ip}', async () => {
    // Earlier tests spent tokens from the same IP: start from a full bucket.
    const stale = await allKeys('telemetry:ratelimit:*');
    if (stale.length > 0) for (const key of stale) await redis.del(key);

    const onA = await connect(a);
    const onB = await connect(b);
    for (let i = 0; i < 60; i++) onA.send('unsubscribe', { deviceId: `rc-rl-${i}` });
    for (let i = 0; i < 60; i++) expect((await onA.next(() => true, 5000, `A answer #${i + 1}`)).event).toBe('unsubscribed');
    for (let i = 0; i < 40; i++) onB.send('unsubscribe', { deviceId: `rc-rl-${i}` });
    for (let i = 0; i < 40; i++) expect((await onB.next(() => true, 5000, `B answer #${i + 1}`)).event).toBe('unsubscribed');

    const nextOnB = await onB.request('latest', { deviceId: deviceIds[3] });
    expect(nextOnB.event).toBe('error');
    expect(nextOnB.data.code).toBe('RATE_LIMITED');
    expect(nextOnB.data.retryAfterMs).toBeGreaterThan(0);
    const nextOnA = await onA.request('latest', { deviceId: deviceIds[3] });
    expect(nextOnA.data.code).toBe('RATE_LIMITED');

    const keys = await allKeys('telemetry:ratelimit:*');
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^telemetry:ratelimit:\{(::ffff:)?127\.0\.0\.1\}$/);
    const bucket = await redis.hgetall(keys[0]);
    expect(Number(bucket.tokens)).toBeLessThan(1);
    await redis.del(keys[0]);
  });

  it('one master SIGKILLed (its slots stay down): every route still answers, promptly, and /health says degraded', async () => {
    const id = deviceIds[4];
    const urls = [
      `/api/devices/${id}/latest`,
      `/api/devices/${id}/stats`,
      `/api/devices/${id}/aggregates/hourly?metric=temperature&from=${iso(from)}&to=${iso(to)}`,
      `/api/devices/${id}/samples?limit=5`,
      '/api/dashboard/metrics',
      '/api/devices?limit=5',
      '/api/cache/stats',
    ];
    const timings: Array<{ phase: string; url: string; ms: number }> = [];
    async function everyRouteAnswers(phase: string): Promise<void> {
      for (const instance of [a, b]) {
        for (const url of urls) {
          const res = await get(instance, url);
          expect({ phase, url, status: res.status }).toEqual({ phase, url, status: 200 });
          // Generous bound (the contract's is normal latency + 100 ms): catches a client that hangs on the dead node.
          expect({ phase, url, slow: res.ms > 1000 }).toEqual({ phase, url, slow: false });
          timings.push({ phase, url, ms: Math.round(res.ms) });
        }
      }
      expect((await get(a, `/api/devices/${id}/latest`)).body.metrics).toEqual({ temperature: 104, humidity: 40 });
    }

    const victim = cluster.ports[1];
    await cluster.kill(victim, 'SIGKILL');
    // Right away: the surviving masters still serve their slots, the victim's fail.
    await everyRouteAnswers('just killed');
    // Then the survivors declare the cluster failed (cluster-node-timeout, 2 s here) and refuse every key.
    await waitFor(async () => (await cluster.clusterState(cluster.ports[0])) === 'fail', 10_000, 'cluster_state:fail');
    await everyRouteAnswers('cluster_state:fail');

    for (const instance of [a, b]) {
      await waitFor(async () => (await get(instance, '/health')).body.status === 'degraded', 10_000, '/health degraded');
      const health = await get(instance, '/health');
      expect(health.status).toBe(200);
      expect(health.body.status).toBe('degraded');
      expect(health.body.checks.redis.status).toBe('down');
      expect(health.body.checks.postgres.status).toBe('up');
      expect((await get(instance, '/api/cache/stats')).body.backend).toBe('memory');
      expect(await metric(instance, 'telemetry_cache_backend_up')).toBe(0);
    }
    timings.sort((x, y) => y.ms - x.ms);
    console.log(`[redis-cluster] after SIGKILL of master :${victim}: slowest answers ${JSON.stringify(timings.slice(0, 3))}`);
  });

  it('the master back (same port, empty): both instances use the cluster again by themselves', async () => {
    const victim = cluster.ports[1];
    if (!cluster.isRunning(victim)) await cluster.restart(victim);
    const restarted = performance.now();
    for (const instance of [a, b]) {
      await waitFor(async () => (await get(instance, '/health')).body.status === 'ok', 15_000, '/health ok again');
      expect((await get(instance, '/api/cache/stats')).body.backend).toBe('redis');
    }
    const recoveryMs = performance.now() - restarted;
    // Served through the cluster again: a read fills the key on it.
    const id = deviceIds[5];
    expect((await get(b, `/api/devices/${id}/stats`)).status).toBe(200);
    expect(await redis.exists(cacheKeys.stats(id))).toBe(1);
    console.log(`[redis-cluster] master :${victim} restarted: both instances back on Redis after ${Math.round(recoveryMs)} ms`);
  });
});
