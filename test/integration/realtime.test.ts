// The /ws endpoint end to end (docs/api.md WebSocket, Configuration, Metrics where they touch it):
// the real app in-process on a throw-away PostgreSQL database and the shared
// Redis, database 13 (reserved for the realtime tests, flushed before each
// test so rate-limit buckets never leak between tests). Devices publish to the
// app's own embedded broker (MQTT_URL unset, MQTT_PORT=0): the shared
// Mosquitto is never touched.
import Redis from 'ioredis';
import type { MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../../src/broker/embedded-broker';
import { scanKeys } from '../support/redis-keys';
import { metricValue } from '../support/app-process';
import { waitFor } from '../support/free-port';
import { connectDevice, telemetryTopic } from '../support/publisher';
import { describeWithServers, sharedRedisUrl } from '../support/servers';
import { startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { type Frame, HandshakeRefused, type Json, lockSharedRedisDb, now, WsTestClient } from '../support/ws-client';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('timing');

const REDIS_DB = 13;
const REDIS_URL = sharedRedisUrl(REDIS_DB);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const iso = (ms: number) => new Date(ms).toISOString();

describeWithServers(['postgres', 'redis'])('WebSocket /ws', () => {
  const run = Math.random().toString(36).slice(2, 8);
  let release: (() => Promise<void>) | undefined;
  let db: TestDatabase;
  let app: TestApp;
  let redis: Redis;
  let mqttUrl: string;
  let wsUrl: string;
  let device: MqttClient;
  const clients: WsTestClient[] = [];
  /** Distinct, increasing sample times inside the accepted range (an hour ago onwards). */
  let clock = Date.now() - 3600_000;
  const nextTs = () => ++clock;

  async function connect(url = wsUrl): Promise<WsTestClient> {
    const client = await WsTestClient.connect(url);
    clients.push(client);
    return client;
  }

  /** Publishes one sample (QoS 1) and resolves on the PUBACK, which the embedded broker sends after commit. */
  async function publish(deviceId: string, metrics: Record<string, number>, ts = nextTs()): Promise<number> {
    await device.publishAsync(telemetryTopic(deviceId), JSON.stringify({ ts, metrics }), { qos: 1 });
    return ts;
  }

  async function scrape(target: TestApp = app): Promise<string> {
    const res = await target.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    return res.body;
  }

  async function metric(name: string, target: TestApp = app): Promise<number> {
    return metricValue(await scrape(target), name);
  }

  async function httpGet(path: string): Promise<{ status: number; body: Json }> {
    const res = await fetch(`${app.baseUrl}${path}`);
    return { status: res.status, body: await res.json() };
  }

  const scan = (pattern: string) => scanKeys(redis, pattern);

  const isSample = (deviceId: string, ts?: number) => (f: Frame) =>
    f.event === 'sample' && f.data?.deviceId === deviceId && (ts === undefined || f.data.ts === iso(ts));

  beforeAll(async () => {
    release = await lockSharedRedisDb(REDIS_DB);
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.flushdb();
    db = await createTestDatabase('realtime');
    app = await startTestApp({
      DATABASE_URL: db.url,
      REDIS_URL,
      MQTT_URL: undefined,
      MQTT_PORT: '0',
      INSTANCE_ID: `rt-${run}`,
      WS_TOKEN: undefined,
      WS_RATE_LIMIT: undefined,
      WS_RATE_WINDOW_S: undefined,
    });
    const port = app.get(EmbeddedBroker).port;
    if (!port) throw new Error('embedded broker is not listening');
    mqttUrl = `mqtt://127.0.0.1:${port}`;
    wsUrl = `${app.baseUrl.replace('http', 'ws')}/ws`;
    device = await connectDevice(mqttUrl, { clientId: `rt-dev-${run}` });
  }, 11 * 60_000);

  beforeEach(async () => {
    await redis.flushdb();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    await device?.endAsync().catch(() => undefined);
    await app?.close();
    await db?.drop();
    if (redis) {
      await redis.flushdb().catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
    await release?.();
  });

  // ---- the four requests -----------------------------------------------------

  it('subscribe to a device without data → subscribed {deviceId, latest: null}; unsubscribe → unsubscribed {deviceId}', async () => {
    const c = await connect();
    const subscribed = await c.request('subscribe', { deviceId: `new-${run}` });
    expect(subscribed.event).toBe('subscribed');
    expect(subscribed.data).toEqual({ deviceId: `new-${run}`, latest: null });
    const unsubscribed = await c.request('unsubscribe', { deviceId: `new-${run}` });
    expect(unsubscribed.event).toBe('unsubscribed');
    expect(unsubscribed.data).toEqual({ deviceId: `new-${run}` });
  });

  it('subscribe to a device with data → subscribed with the latest snapshot; latest → the same as GET /api/devices/:id/latest', async () => {
    const id = `with-data-${run}`;
    await publish(id, { temperature: 20, humidity: 30 });
    const newest = await publish(id, { temperature: 21.5, humidity: 40.2 });
    const expected = { deviceId: id, ts: iso(newest), metrics: { temperature: 21.5, humidity: 40.2 } };
    // The latest cache is written right after commit, a moment after the PUBACK.
    await waitFor(async () => JSON.stringify((await httpGet(`/api/devices/${id}/latest`)).body) === JSON.stringify(expected), 5000, 'latest over HTTP');

    const c = await connect();
    const subscribed = await c.request('subscribe', { deviceId: id });
    expect(subscribed.event).toBe('subscribed');
    expect(subscribed.data).toEqual({ deviceId: id, latest: expected });

    const latest = await c.request('latest', { deviceId: id });
    expect(latest.event).toBe('latest');
    expect(latest.data).toEqual(expected);

    const http = await httpGet(`/api/devices/${id}/latest`);
    expect(http.status).toBe(200);
    expect(http.body).toEqual(expected);
  });

  it('subscribe "*" → subscribed {deviceId: "*", latest: null}', async () => {
    const c = await connect();
    const subscribed = await c.request('subscribe', { deviceId: '*' });
    expect(subscribed).toMatchObject({ event: 'subscribed', data: { deviceId: '*', latest: null } });
  });

  it('latest for a device without data still answers with event "latest" for that device', async () => {
    const c = await connect();
    const latest = await c.request('latest', { deviceId: `nobody-${run}` });
    expect(latest.event).toBe('latest');
    expect(latest.data.deviceId).toBe(`nobody-${run}`);
  });

  it('dashboard {} → the same object as GET /api/dashboard/metrics', async () => {
    await publish(`dash-${run}`, { x: 1 });
    const c = await connect();
    const answer = await c.request('dashboard', {});
    expect(answer.event).toBe('dashboard');
    const http = await httpGet('/api/dashboard/metrics');
    expect(http.status).toBe(200);
    expect(Object.keys(answer.data).sort()).toEqual(['activeDevices', 'devices', 'ingestRatePerSec', 'samplesLast24h', 'samplesLastHour', 'topDevices']);
    for (const key of ['activeDevices', 'devices', 'ingestRatePerSec', 'samplesLast24h', 'samplesLastHour']) {
      expect(typeof answer.data[key]).toBe('number');
    }
    expect(Array.isArray(answer.data.topDevices)).toBe(true);
    // Both are served from the dashboard cache entry (TTL 5 min): identical.
    expect(answer.data).toEqual(http.body);
  });

  // ---- live samples ----------------------------------------------------------

  it('a sample published over MQTT after subscribe arrives as sample {deviceId, ts, metrics}', async () => {
    const id = `live-${run}`;
    const sentBefore = await metric('telemetry_ws_messages_sent_total');
    const c = await connect();
    await c.request('subscribe', { deviceId: id });
    const ts = await publish(id, { temperature: 22.25, on: 1 });
    const sample = await c.next(isSample(id), 5000, `a sample of ${id}`);
    expect(sample.data).toEqual({ deviceId: id, ts: iso(ts), metrics: { temperature: 22.25, on: 1 } });

    // An array payload: one sample event per point, booleans as 1/0.
    const t1 = nextTs();
    const t2 = nextTs();
    await device.publishAsync(
      telemetryTopic(id),
      JSON.stringify([
        { ts: t1, metrics: { a: 1 } },
        { ts: t2, metrics: { a: 2, b: true } },
      ]),
      { qos: 1 },
    );
    expect((await c.next(isSample(id, t1))).data).toEqual({ deviceId: id, ts: iso(t1), metrics: { a: 1 } });
    expect((await c.next(isSample(id, t2))).data).toEqual({ deviceId: id, ts: iso(t2), metrics: { a: 2, b: 1 } });
    // QoS 0 is delivered as well.
    const t3 = nextTs();
    await device.publishAsync(telemetryTopic(id), JSON.stringify({ ts: t3, metrics: { a: 3 } }), { qos: 0 });
    expect((await c.next(isSample(id, t3))).data.metrics).toEqual({ a: 3 });
    // Every frame is counted: the subscribed answer and four samples (other clients may add more).
    expect(await metric('telemetry_ws_messages_sent_total')).toBeGreaterThanOrEqual(sentBefore + 5);
  });

  it('a client that did not subscribe to a device receives none of its samples', async () => {
    const id = `other-${run}`;
    const sentinel = `sentinel-a-${run}`;
    const c = await connect();
    await c.request('subscribe', { deviceId: sentinel });
    await publish(id, { v: 1 });
    const ts = await publish(sentinel, { v: 1 });
    await c.next(isSample(sentinel, ts));
    await sleep(200);
    expect(c.frames.filter(isSample(id))).toHaveLength(0);
  });

  it('"*" receives the samples of every device, once each even when also subscribed to the device', async () => {
    const ids = [0, 1, 2].map((i) => `star-${i}-${run}`);
    const c = await connect();
    await c.request('subscribe', { deviceId: '*' });
    await c.request('subscribe', { deviceId: ids[0] });
    const sent = [];
    for (const id of ids) sent.push({ id, ts: await publish(id, { v: 7 }) });
    for (const { id, ts } of sent) {
      expect((await c.next(isSample(id, ts))).data).toEqual({ deviceId: id, ts: iso(ts), metrics: { v: 7 } });
    }
    await sleep(200);
    for (const { id, ts } of sent) expect(c.frames.filter(isSample(id, ts))).toHaveLength(1);
  });

  it('after unsubscribe no more samples of that device arrive', async () => {
    const id = `unsub-${run}`;
    const sentinel = `sentinel-b-${run}`;
    const c = await connect();
    await c.request('subscribe', { deviceId: id });
    await c.request('subscribe', { deviceId: sentinel });
    const before = await publish(id, { v: 1 });
    await c.next(isSample(id, before));

    expect(await c.request('unsubscribe', { deviceId: id })).toMatchObject({ event: 'unsubscribed', data: { deviceId: id } });
    const after = await publish(id, { v: 2 });
    // Frames on one socket arrive in order: once the sentinel's later sample is
    // here, a sample of `id` sent before it would have been here too.
    const marker = await publish(sentinel, { v: 1 });
    await c.next(isSample(sentinel, marker));
    await sleep(300);
    expect(c.frames.filter(isSample(id, after))).toHaveLength(0);

    // Unsubscribing "*" works the same way.
    await c.request('subscribe', { deviceId: '*' });
    await c.request('unsubscribe', { deviceId: '*' });
    const starAfter = await publish(`unsub-star-${run}`, { v: 3 });
    const marker2 = await publish(sentinel, { v: 2 });
    await c.next(isSample(sentinel, marker2));
    await sleep(200);
    expect(c.frames.filter(isSample(`unsub-star-${run}`, starAfter))).toHaveLength(0);
  });

  // ---- malformed input, ordering -------------------------------------------

  it('malformed JSON, unknown events, bad data and binary frames → error BAD_REQUEST, and the connection stays open', async () => {
    const c = await connect();
    const bad: Array<string | Buffer> = [
      '{"event":"subscribe",',
      'hello',
      '[]',
      JSON.stringify({ event: 'publish', data: { deviceId: 'x' } }),
      JSON.stringify({ event: 'subscribe', data: {} }),
      JSON.stringify({ event: 'subscribe', data: { deviceId: 'bad id!' } }),
      JSON.stringify({ event: 'latest', data: { deviceId: '*' } }),
      Buffer.from(JSON.stringify({ event: 'dashboard', data: {} })), // a binary frame
      JSON.stringify({ event: 'latest', data: { deviceId: 'x', pad: 'p'.repeat(20_000) } }), // over 16 KiB
    ];
    for (const raw of bad) {
      c.sendRaw(raw);
      const answer = await c.next(() => true, 5000, `the answer to ${String(raw)}`);
      expect(answer.event).toBe('error');
      expect(answer.data.code).toBe('BAD_REQUEST');
      expect(typeof answer.data.message).toBe('string');
      expect(answer.data.message.length).toBeGreaterThan(0);
      expect(c.open).toBe(true);
    }
    const valid = await c.request('latest', { deviceId: `after-bad-${run}` });
    expect(valid.event).toBe('latest');
    expect(c.open).toBe(true);
    expect(c.closeCode).toBeUndefined();
  });

  it('answers come back in request order, whatever each costs', async () => {
    const id = `order-${run}`;
    await publish(id, { v: 1 });
    const c = await connect();
    const requests: Array<[string, unknown] | string> = [
      ['dashboard', {}],
      ['subscribe', { deviceId: id }],
      '{oops',
      ['latest', { deviceId: id }],
      ['unsubscribe', { deviceId: id }],
      ['latest', { deviceId: `order-none-${run}` }],
      ['nope', {}],
      ['subscribe', { deviceId: '*' }],
      ['dashboard', {}],
      ['unsubscribe', { deviceId: '*' }],
    ];
    for (const r of requests) {
      if (typeof r === 'string') c.sendRaw(r);
      else c.send(r[0], r[1]);
    }
    const answers: Frame[] = [];
    for (let i = 0; i < requests.length; i++) answers.push(await c.next((f) => f.event !== 'sample', 10000, `answer #${i + 1}`));
    expect(answers.map((a) => a.event)).toEqual([
      'dashboard',
      'subscribed',
      'error',
      'latest',
      'unsubscribed',
      'latest',
      'error',
      'subscribed',
      'dashboard',
      'unsubscribed',
    ]);
    expect(answers[1].data.deviceId).toBe(id);
    expect(answers[3].data.deviceId).toBe(id);
    expect(answers[5].data.deviceId).toBe(`order-none-${run}`);
  });

  // ---- rate limit -------------------------------------------------------------

  it('rate limit: 100 messages pass, the 101st is RATE_LIMITED (retryAfterMs 1..700), ~1.67 more per second after that; the bucket lives in Redis', async () => {
    const limitedBefore = await metric('telemetry_ws_rate_limited_total');
    const c = await connect();
    for (let i = 0; i < 101; i++) c.send('unsubscribe', { deviceId: `rl-${i}` });
    const answers: Frame[] = [];
    for (let i = 0; i < 101; i++) answers.push(await c.next(() => true, 10000, `answer #${i + 1}`));
    const passed = answers.filter((a) => a.event === 'unsubscribed');
    expect(passed).toHaveLength(100);
    // Answered in order, so the first 100 passed.
    expect(passed.map((a) => a.data.deviceId)).toEqual(Array.from({ length: 100 }, (_, i) => `rl-${i}`));
    const refused = answers[100];
    expect(refused.event).toBe('error');
    expect(refused.data.code).toBe('RATE_LIMITED');
    expect(typeof refused.data.retryAfterMs).toBe('number');
    expect(refused.data.retryAfterMs).toBeGreaterThanOrEqual(1);
    expect(refused.data.retryAfterMs).toBeLessThanOrEqual(700);
    expect(c.open).toBe(true);

    // The bucket is in Redis (db 13), keyed by the client's IP.
    const keys = await scan('telemetry:ratelimit:*');
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatch(/^telemetry:ratelimit:\{(::ffff:)?127\.0\.0\.1\}$/);
    const ttl = await redis.pttl(keys[0]);
    expect(ttl).toBeGreaterThan(0);

    // ~3 s later the bucket holds 5 tokens and a bit (it refills at 100 per 60 s).
    await sleep(3000 - (now() - refused.receivedAt));
    for (let i = 0; i < 8; i++) c.send('latest', { deviceId: `rl-later-${i}` });
    const later: Frame[] = [];
    for (let i = 0; i < 8; i++) later.push(await c.next(() => true, 10000, `later answer #${i + 1}`));
    const laterPassed = later.filter((a) => a.event === 'latest').length;
    expect(laterPassed).toBeGreaterThanOrEqual(5);
    expect(laterPassed).toBeLessThanOrEqual(6);
    // Refusals come after the passes (no token is taken by a refusal).
    expect(later.slice(0, laterPassed).every((a) => a.event === 'latest')).toBe(true);
    expect(later.slice(laterPassed).every((a) => a.event === 'error' && a.data.code === 'RATE_LIMITED')).toBe(true);

    const limitedAfter = await metric('telemetry_ws_rate_limited_total');
    expect(limitedAfter - limitedBefore).toBe(1 + (8 - laterPassed));
  });

  it('rate limit: the bucket is per client IP, not per connection', async () => {
    const a = await connect();
    const b = await connect();
    for (let i = 0; i < 60; i++) a.send('unsubscribe', { deviceId: `ip-${i}` });
    for (let i = 0; i < 60; i++) await a.next(() => true, 10000);
    for (let i = 0; i < 41; i++) b.send('unsubscribe', { deviceId: `ip-b-${i}` });
    const answers: Frame[] = [];
    for (let i = 0; i < 41; i++) answers.push(await b.next(() => true, 10000));
    expect(answers.filter((f) => f.event === 'unsubscribed')).toHaveLength(40);
    expect(answers[40]).toMatchObject({ event: 'error', data: { code: 'RATE_LIMITED' } });
  });

  it('a client that keeps sending while limited is closed with 1008', async () => {
    const c = await connect();
    for (let i = 0; i < 100; i++) c.send('unsubscribe', { deviceId: `flood-${i}` });
    for (let i = 0; i < 100; i++) await c.next(() => true, 10000);
    for (let i = 0; i < 60 && c.open; i++) {
      c.send('unsubscribe', { deviceId: `flood-more-${i}` });
      await sleep(2);
    }
    expect(await c.waitClosed(5000)).toBe(1008);
    expect(c.all('error').filter((f) => f.data.code === 'RATE_LIMITED').length).toBeGreaterThanOrEqual(1);
  });

  // ---- connections gauge ------------------------------------------------------

  it('telemetry_ws_connections reflects the open clients', async () => {
    await waitFor(async () => (await metric('telemetry_ws_connections')) === 0, 5000, 'no connections');
    const c1 = await connect();
    const c2 = await connect();
    const c3 = await connect();
    await waitFor(async () => (await metric('telemetry_ws_connections')) === 3, 5000, '3 connections');
    await c2.close();
    await waitFor(async () => (await metric('telemetry_ws_connections')) === 2, 5000, '2 connections');
    c3.ws.terminate(); // gone without a close handshake
    await waitFor(async () => (await metric('telemetry_ws_connections')) === 1, 5000, '1 connection');
    await c1.close();
    await waitFor(async () => (await metric('telemetry_ws_connections')) === 0, 5000, '0 connections');
  });

  // ---- slow client ------------------------------------------------------------

  it('a slow client does not hold up ingestion or other clients; it gets the newest sample per device and drops are counted', async () => {
    const DEVICES = 50;
    const ROUNDS = 100; // + one final round
    const METRICS = 40;
    const prefix = `slow-${run}-`;
    const ids = Array.from({ length: DEVICES }, (_, i) => `${prefix}${String(i).padStart(2, '0')}`);
    const metricNames = Array.from({ length: METRICS }, (_, k) => `m${String(k).padStart(2, '0')}_vibration_amplitude_rms`);
    const payload = (round: number, ts: number) => {
      const metrics: Record<string, number> = { seq: round };
      for (const name of metricNames) metrics[name] = Math.round(Math.random() * 1e7) / 1000;
      return JSON.stringify({ ts, metrics });
    };

    const normal = await connect();
    const slow = await connect();
    expect((await normal.request('subscribe', { deviceId: '*' })).event).toBe('subscribed');
    expect((await slow.request('subscribe', { deviceId: '*' })).event).toBe('subscribed');
    slow.pauseReading();
    const droppedBefore = await metric('telemetry_ws_dropped_total');

    const publishers = await Promise.all([0, 1, 2, 3, 4].map((i) => connectDevice(mqttUrl, { clientId: `rt-slowpub-${i}-${run}` })));
    const base = Date.now() - 1800_000;
    const started = now();
    try {
      // Rounds: each device publishes one message, then the next round waits
      // for every PUBACK (sent after commit). The final round (seq = ROUNDS)
      // is published only after all earlier ones are committed, so it is
      // each device's newest sample beyond doubt.
      for (let round = 0; round <= ROUNDS; round++) {
        await Promise.all(
          ids.map((id, i) => publishers[i % publishers.length].publishAsync(telemetryTopic(id), payload(round, base + round * 1000 + i), { qos: 1 })),
        );
      }
    } finally {
      await Promise.all(publishers.map((p) => p.endAsync()));
    }
    const ingestSeconds = (now() - started) / 1000;

    // Every row committed (the PUBACKs said so): the database count is exact.
    const [{ n }] = await db.query<{ n: string }>('SELECT count(*) AS n FROM samples WHERE device_id LIKE $1', [`${prefix}%`]);
    expect(Number(n)).toBe(DEVICES * (ROUNDS + 1) * (METRICS + 1));

    // The normal client receives every sample, once.
    const expectedTotal = DEVICES * (ROUNDS + 1);
    const mine = (f: Frame) => f.event === 'sample' && String(f.data?.deviceId).startsWith(prefix);
    await waitFor(() => normal.frames.filter(mine).length >= expectedTotal, 60000, `the normal client's ${expectedTotal} samples`);
    await sleep(200);
    const seen = new Map<string, number[]>();
    for (const f of normal.frames.filter(mine)) {
      const list = seen.get(f.data.deviceId) ?? [];
      list.push(f.data.metrics.seq);
      seen.set(f.data.deviceId, list);
    }
    expect(normal.frames.filter(mine)).toHaveLength(expectedTotal);
    for (const id of ids) expect([...(seen.get(id) ?? [])].sort((x, y) => x - y)).toEqual(Array.from({ length: ROUNDS + 1 }, (_, r) => r));

    // The slow client's queue overflowed: drops were counted instead of buffering everything.
    const dropped = (await metric('telemetry_ws_dropped_total')) - droppedBefore;
    expect(dropped).toBeGreaterThan(0);
    expect(slow.open).toBe(true);

    // Once it reads again it gets (at least) the newest sample of every device.
    slow.resumeReading();
    const newestOf = (id: string) => (f: Frame) => f.event === 'sample' && f.data?.deviceId === id && f.data.metrics?.seq === ROUNDS;
    await waitFor(() => ids.every((id) => slow.frames.some(newestOf(id))), 30000, 'the slow client to get the newest sample of every device');
    await sleep(300);
    const slowReceived = slow.frames.filter(mine).length;
    for (const id of ids) {
      const own = slow.frames.filter((f) => mine(f) && f.data.deviceId === id);
      expect(own[own.length - 1].data.metrics.seq).toBe(ROUNDS);
      expect(own.filter((f) => f.data.metrics.seq === ROUNDS)).toHaveLength(1);
    }
    expect(slowReceived).toBeLessThan(expectedTotal);
    expect(slowReceived + dropped).toBeGreaterThanOrEqual(expectedTotal);
    console.log(
      `[realtime] slow client: ${expectedTotal} samples (${DEVICES * (ROUNDS + 1) * (METRICS + 1)} rows) committed in ${ingestSeconds.toFixed(1)} s; ` +
        `normal client got ${expectedTotal}, paused client got ${slowReceived}, telemetry_ws_dropped_total +${dropped}`,
    );
  }, 180_000);

  // ---- latency (measured, not asserted) ---------------------------------------

  it('measures publish → WebSocket latency at a steady 500 msg/s', async () => {
    const COUNT = 2000;
    const RATE = 500;
    const DEVICES = 10;
    const prefix = `lat-${run}-`;
    const c = await connect();
    await c.request('subscribe', { deviceId: '*' });
    const publisher = await connectDevice(mqttUrl, { clientId: `rt-latpub-${run}` });
    const base = Date.now() - 1200_000;
    const histogram = async () => {
      const text = await scrape();
      return {
        lagSum: metricValue(text, 'telemetry_ingest_lag_seconds_sum'),
        lagCount: metricValue(text, 'telemetry_ingest_lag_seconds_count'),
        flushSum: metricValue(text, 'telemetry_ingest_flush_seconds_sum'),
        flushCount: metricValue(text, 'telemetry_ingest_flush_seconds_count'),
      };
    };
    const h0 = await histogram();
    const acks: Array<Promise<unknown>> = [];
    const start = now();
    try {
      for (let i = 0; i < COUNT; i++) {
        const due = start + (i * 1000) / RATE;
        const wait = due - now();
        if (wait > 1) await sleep(wait);
        const id = `${prefix}${i % DEVICES}`;
        acks.push(publisher.publishAsync(telemetryTopic(id), JSON.stringify({ ts: base + i, metrics: { sentAt: now(), i } }), { qos: 1 }));
      }
      await Promise.all(acks);
    } finally {
      await publisher.endAsync();
    }
    const sendSeconds = (now() - start) / 1000;
    const mine = (f: Frame) => f.event === 'sample' && String(f.data?.deviceId).startsWith(prefix);
    await waitFor(() => c.frames.filter(mine).length >= COUNT, 30000, `${COUNT} samples on the WebSocket`);
    const latencies = c.frames
      .filter(mine)
      .map((f) => f.receivedAt - f.data.metrics.sentAt)
      .sort((a, b) => a - b);
    expect(latencies).toHaveLength(COUNT);
    const h1 = await histogram();
    const meanLagMs = ((h1.lagSum - h0.lagSum) / Math.max(1, h1.lagCount - h0.lagCount)) * 1000;
    const meanFlushMs = ((h1.flushSum - h0.flushSum) / Math.max(1, h1.flushCount - h0.flushCount)) * 1000;
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
    console.log(
      `[realtime] publish→WebSocket latency over ${COUNT} samples at ${(COUNT / sendSeconds).toFixed(0)} msg/s: ` +
        `p50 ${pct(50).toFixed(1)} ms, p90 ${pct(90).toFixed(1)} ms, p99 ${pct(99).toFixed(1)} ms, max ${latencies[latencies.length - 1].toFixed(1)} ms ` +
        `(server side: mean receive→commit ${meanLagMs.toFixed(1)} ms, ${h1.flushCount - h0.flushCount} batches, mean flush ${meanFlushMs.toFixed(1)} ms)`,
    );
  }, 90_000);

  // ---- WS_TOKEN and shutdown (an app of their own) ------------------------------

  describe('with WS_TOKEN set', () => {
    const TOKEN = `ws-token-${run}-secret`;
    let secured: TestApp;
    let securedUrl: string;

    beforeAll(async () => {
      secured = await startTestApp({
        DATABASE_URL: db.url,
        REDIS_URL,
        MQTT_URL: undefined,
        MQTT_PORT: '0',
        INSTANCE_ID: `rt-token-${run}`,
        WS_TOKEN: TOKEN,
      });
      securedUrl = `${secured.baseUrl.replace('http', 'ws')}/ws`;
    });

    afterAll(async () => {
      await secured?.close().catch(() => undefined);
    });

    it('refuses the handshake without a token or with a wrong one (HTTP 401), accepts ?token=', async () => {
      for (const url of [
        securedUrl,
        `${securedUrl}?token=`,
        `${securedUrl}?token=wrong`,
        `${securedUrl}?token=${TOKEN}x`,
        `${securedUrl}?token=${TOKEN.slice(0, -1)}`,
      ]) {
        const error = await WsTestClient.connect(url).then(
          (c) => {
            clients.push(c);
            return undefined;
          },
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(HandshakeRefused);
        expect((error as HandshakeRefused).statusCode).toBe(401);
      }
      const ok = await connect(`${securedUrl}?token=${encodeURIComponent(TOKEN)}`);
      expect((await ok.request('dashboard', {})).event).toBe('dashboard');
      await waitFor(async () => (await metric('telemetry_ws_connections', secured)) === 1, 5000, 'one connection on the secured app');
      // The token is a secret: never logged.
      expect(secured.logs.filter((line) => line.includes(TOKEN))).toEqual([]);
    });

    it('graceful shutdown closes every client with 1001', async () => {
      const a = await connect(`${securedUrl}?token=${TOKEN}`);
      const b = await connect(`${securedUrl}?token=${TOKEN}`);
      await a.request('subscribe', { deviceId: '*' });
      await secured.close();
      expect(await a.waitClosed(10000)).toBe(1001);
      expect(await b.waitClosed(10000)).toBe(1001);
    });
  });
});
