// Scale-out with three BUILT service processes (docs/api.md Ingestion shared
// subscription, §4 shared cache and invalidation, §5 fan-out and shared rate
// limit), each started like an operator would: distinct INSTANCE_IDs, one
// PostgreSQL database, one Redis (the shared server, database 10, reserved
// for this file: locked, flushed before and after) and one PRIVATE Mosquitto
// with the project's broker config (unlimited in-flight/queues), so the
// shared subscription group `$share/telemetry-hub/...` holds exactly our
// three sessions.
//
//  - 9,000 unique QoS 1 messages over 300 devices: every point is stored
//    exactly once in total (rollups exact too), every instance took part
//    (its telemetry_messages_received_total > 0), and together they
//    received at least 9,000.
//  - A WebSocket client on instance 3 subscribed to '*' sees every one of
//    the 9,000 samples, whichever instance stored it.
//  - DELETE on instance 1: 404 on instances 2 and 3, the device's keys gone.
//  - One client IP: 100 WebSocket messages spread over instances 1 and 2
//    empty the bucket; the 101st, on instance 3, is RATE_LIMITED.
//
// Pub/sub channels are server-wide (not per Redis database): other test files
// running in parallel may publish on telemetry:fanout too, so samples are
// counted for this run's device ids only.
import Redis from 'ioredis';
import { scanKeys } from '../support/redis-keys';
import { type AppProcess, metricValue } from '../support/app-process';
import { waitFor } from '../support/free-port';
import { FaultScenario } from '../support/fault-scenario';
import { createLoad, received, verifyStoredExactlyOnce, expectNoRejections } from '../support/load-check';
import { describeWithServers, sharedRedisUrl } from '../support/servers';
import { type Frame, lockSharedRedisDb, WsTestClient } from '../support/ws-client';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('timing');

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const REDIS_DB = 10;
const REDIS_URL = sharedRedisUrl(REDIS_DB);
const ADMIN_KEY = 'multi-instance-admin-key';
const MESSAGES = 9_000;
const DEVICES = 300;
const run = Math.random().toString(36).slice(2, 8);
// 30 points per device, 5 min apart: several hourly buckets per series.
const load = createLoad({ prefix: `mi${run}`, messages: MESSAGES, devices: DEVICES, stepMs: 300_000 });
const INSTANCE_IDS = [1, 2, 3].map((n) => `mi-${n}-${run}`);

describeWithServers(['postgres', 'redis'])('three built instances on one broker, database and Redis', () => {
  let stage: FaultScenario | undefined;
  let redis: Redis;
  let release: (() => Promise<void>) | undefined;
  const apps: AppProcess[] = [];
  const clients: WsTestClient[] = [];

  async function getJson(app: AppProcess, path: string): Promise<{ status: number; body: Json }> {
    const res = await app.fetch(path);
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  }

  const redisKeys = (pattern: string) => scanKeys(redis, pattern);

  async function connectWs(app: AppProcess): Promise<WsTestClient> {
    const client = await WsTestClient.connect(`${app.baseUrl.replace('http', 'ws')}/ws`);
    clients.push(client);
    return client;
  }

  beforeAll(async () => {
    release = await lockSharedRedisDb(REDIS_DB);
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.flushdb();
    const scene = (stage = await FaultScenario.start({ label: 'multi_instance' }));
    const env = {
      REDIS_URL,
      ADMIN_API_KEY: ADMIN_KEY,
      // One token per 6 s: the rate-limit test's 100 messages refill nothing measurable.
      WS_RATE_LIMIT: '100',
      WS_RATE_WINDOW_S: '600',
      LOG_LEVEL: 'info',
    };
    // The first one alone migrates the fresh database; the other two then start together.
    // (All three at once on a fresh database fails about every other time: DatabaseService
    // runs the migrations without a lock, and a loser exits with 'relation "devices" already
    // exists' or a duplicate pg_type key.)
    // Each resolves once its instance has subscribed; the stage stops whichever started.
    apps.push(await scene.startApp({ ...env, INSTANCE_ID: INSTANCE_IDS[0] }));
    const rest = await Promise.allSettled(INSTANCE_IDS.slice(1).map((INSTANCE_ID) => scene.startApp({ ...env, INSTANCE_ID })));
    for (const result of rest) if (result.status === 'fulfilled') apps.push(result.value);
    const failed = rest.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
  }, 90_000);

  afterAll(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    await stage?.destroy();
    if (redis) {
      await redis.flushdb().catch(() => undefined);
      await redis.quit().catch(() => redis.disconnect());
    }
    await release?.();
  }, 60_000);

  it(`${MESSAGES} QoS 1 messages over ${DEVICES} devices: stored exactly once in total, every instance took part, and a '*' client on instance 3 sees every sample`, async () => {
    const [, , third] = apps;
    const watcher = await connectWs(third);
    expect((await watcher.request('subscribe', { deviceId: '*' })).event).toBe('subscribed');
    const ours = (f: Frame) => f.event === 'sample' && typeof f.data?.deviceId === 'string' && f.data.deviceId.startsWith(`mi${run}-`);
    const seen = () => new Set(watcher.frames.filter(ours).map((f) => `${f.data.deviceId}|${f.data.ts}`));

    const scene = stage as FaultScenario;
    const started = Date.now();
    // Paced so the watcher (in this process, next to the publisher) keeps up with its socket.
    await (
      await scene.publish(load, { window: 500, ratePerSec: 4000 }, { clientId: `mi-publisher-${run}` })
    ).done;
    const publishedMs = Date.now() - started;

    await scene.waitForCommitted(load.expectedSamples, 30_000);
    const storedMs = Date.now() - started;
    await verifyStoredExactlyOnce(scene.db, load);

    // Every instance took part; together they received every message (more only through redelivery).
    const texts = await Promise.all(apps.map((app) => app.metrics()));
    const perInstance = texts.map(received);
    for (const [i, n] of perInstance.entries())
      expect({ instance: INSTANCE_IDS[i], receivedSome: n > 0 }).toEqual({ instance: INSTANCE_IDS[i], receivedSome: true });
    expect(perInstance.reduce((x, y) => x + y, 0)).toBeGreaterThanOrEqual(MESSAGES);
    // Shared, not merely overlapping: with a plain subscription each instance would get every
    // message (3 × MESSAGES in total) and the idempotent write would still store each once.
    expect(perInstance.reduce((x, y) => x + y, 0)).toBeLessThan(2 * MESSAGES);
    for (const app of apps) {
      expect(app.logRecords().find((r) => r.msg === 'subscribed')?.topic).toBe('$share/telemetry-hub/devices/+/telemetry');
    }
    for (const text of texts) expectNoRejections(text);

    // The watcher: all 9,000 (device, ts) points, a third of them ingested locally, the rest through Redis.
    await waitFor(() => seen().size >= MESSAGES, 15_000, `${MESSAGES} distinct samples on the '*' client`).catch(() => undefined);
    const distinct = seen();
    const expected = new Set(load.points.map((p) => `${p.deviceId}|${new Date(p.ts).toISOString()}`));
    const missing = [...expected].filter((k) => !distinct.has(k));
    const dropped = metricValue(await third.metrics(), 'telemetry_ws_dropped_total');
    // Diagnostics for a shortfall: batches an instance could not publish on Redis, and Redis-down episodes it logged.
    const unpublished = (await Promise.all(apps.map((app) => app.metrics()))).map((t) => metricValue(t, 'telemetry_fanout_unpublished_total'));
    const redisDown = apps.map((app) => app.stdout.filter((line) => line.includes('Redis down')).length);
    console.log(
      `[multi-instance] fan-out: unpublished batches per instance ${unpublished.join('/')}; 'Redis down' log lines per instance ${redisDown.join('/')}`,
    );
    if (redisDown.some((n) => n > 0)) console.log(apps.flatMap((app) => app.stdout.filter((l) => /Redis (down|up)|fan-out/.test(l))).join('\n'));
    // Redis stayed up throughout, so no batch may go unpublished (that is a sample some other instance's clients never see).
    expect({ distinct: distinct.size, missing: missing.slice(0, 5), dropped, unpublished }).toEqual({
      distinct: MESSAGES,
      missing: [],
      dropped: 0,
      unpublished: [0, 0, 0],
    });
    const frames = watcher.frames.filter(ours);
    // Each sample frame carries all four metrics of its point.
    expect(frames.every((f) => Object.keys(f.data.metrics).length === 4)).toBe(true);
    console.log(
      `[multi-instance] ${MESSAGES} messages published in ${publishedMs} ms, all stored after ${storedMs} ms; ` +
        `received per instance ${perInstance.join('/')}; '*' client on instance 3: ${frames.length} sample frames, ${distinct.size} distinct`,
    );
  });

  it('DELETE on instance 1: instances 2 and 3 answer 404 and the device has no cache keys left', async () => {
    const [first, second, third] = apps;
    const id = load.points[7].deviceId;
    const urls = [`/api/devices/${id}/latest`, `/api/devices/${id}/stats`, `/api/devices/${id}/aggregates/hourly?metric=temperature`];
    // Instances 2 and 3 warm every per-device class (and read each other's entries).
    for (const app of [second, third]) for (const url of urls) expect({ url, status: (await getJson(app, url)).status }).toEqual({ url, status: 200 });
    const before = await redisKeys(`telemetry:*{${id}}*`);
    expect(before.length).toBeGreaterThanOrEqual(3);

    const del = await first.fetch(`/api/devices/${id}`, { method: 'DELETE', headers: { 'x-api-key': ADMIN_KEY } });
    expect(del.status).toBe(204);

    expect(await redisKeys(`telemetry:*{${id}}*`)).toEqual([]);
    for (const app of [second, third, first]) {
      for (const url of urls) expect({ port: app.port, url, status: (await getJson(app, url)).status }).toEqual({ port: app.port, url, status: 404 });
    }
    // Neighbours are untouched.
    expect((await getJson(third, `/api/devices/${load.points[8].deviceId}/latest`)).status).toBe(200);
  });

  it('the WebSocket rate limit is shared: 100 messages over instances 1 and 2 empty the bucket, the 101st on instance 3 is RATE_LIMITED', async () => {
    const [first, second, third] = apps;
    const onFirst = await connectWs(first);
    const onSecond = await connectWs(second);
    const onThird = await connectWs(third);
    // Earlier messages from this IP (the '*' subscription) spent a token: start from a full bucket.
    for (const key of await redisKeys('telemetry:ratelimit:*')) await redis.del(key);

    // Interleaved: 50 on each, answers awaited in order per connection.
    for (let i = 0; i < 50; i++) {
      onFirst.send('unsubscribe', { deviceId: `mi-rl-1-${i}` });
      onSecond.send('unsubscribe', { deviceId: `mi-rl-2-${i}` });
    }
    for (const [name, client] of [
      ['1', onFirst],
      ['2', onSecond],
    ] as const) {
      for (let i = 0; i < 50; i++) expect((await client.next(() => true, 5000, `instance ${name} answer #${i + 1}`)).event).toBe('unsubscribed');
    }

    const limited = await onThird.request('latest', { deviceId: load.points[9].deviceId });
    expect(limited.event).toBe('error');
    expect(limited.data.code).toBe('RATE_LIMITED');
    expect(limited.data.retryAfterMs).toBeGreaterThan(0);
    const keys = await redisKeys('telemetry:ratelimit:*');
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^telemetry:ratelimit:\{(::ffff:)?127\.0\.0\.1\}$/);
    expect(metricValue(await third.metrics(), 'telemetry_ws_rate_limited_total')).toBeGreaterThanOrEqual(1);
  });
});
