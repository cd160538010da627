// The optional HTTP API rate limit (docs/api.md Configuration HTTP_RATE_LIMIT /
// HTTP_RATE_WINDOW_S, §4): a token bucket per client IP for /api/*, shared by
// every instance through Redis, answered 429 with Retry-After and the error
// body; /metrics, /health*, /docs* and the page never limited; nothing limited
// when the variable is unset. Real PostgreSQL (a database of its own) and the
// shared Redis, database 7 (reserved for this file, locked and flushed); client
// IPs are random per test so buckets never meet.
import Redis from 'ioredis';
import WebSocket from 'ws';
import { scanKeys } from '../support/redis-keys';
import { freePort } from '../support/free-port';
import { describeWithServers, sharedRedisUrl } from '../support/servers';
import { startTestApp, type TestApp } from '../support/test-app';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { lockSharedRedisDb } from '../support/ws-client';

const REDIS_DB = 6;
const REDIS_URL = sharedRedisUrl(REDIS_DB);
/** 5 tokens refilling fully in 60 s: one every 12 s, so no test waits for a refill. */
const LIMIT = 5;
const WINDOW_S = 60;

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A random address in 10.0.0.0/8, different for every call. */
function randomIp(): string {
  const octet = () => Math.floor(Math.random() * 256);
  return `10.${octet()}.${octet()}.${octet()}`;
}

describeWithServers(['postgres', 'redis'])('HTTP API rate limit (HTTP_RATE_LIMIT)', () => {
  const run = Math.random().toString(36).slice(2, 8);
  let release: (() => Promise<void>) | undefined;
  let redis: Redis;
  let db: TestDatabase;
  /** a and b: two instances behind a proxy (TRUST_PROXY), limit 5 per 60 s. */
  let a: TestApp;
  let b: TestApp;
  /** direct: no proxy, limit 3 per 60 s, keyed by the socket address. */
  let direct: TestApp;
  /** unlimited: HTTP_RATE_LIMIT unset. */
  let unlimited: TestApp;

  async function start(name: string, env: Record<string, string | undefined>): Promise<TestApp> {
    return startTestApp({
      DATABASE_URL: db.url,
      REDIS_URL,
      MQTT_URL: undefined,
      MQTT_PORT: String(await freePort()),
      INSTANCE_ID: `rl-${name}-${run}`,
      HTTP_RATE_LIMIT: undefined,
      HTTP_RATE_WINDOW_S: undefined,
      TRUST_PROXY: undefined,
      ...env,
    });
  }

  async function get(app: TestApp, url: string, headers: Record<string, string> = {}, remoteAddress?: string) {
    const res = await app.app.inject({ method: 'GET', url, headers, remoteAddress });
    return { status: res.statusCode, headers: res.headers, body: res.body };
  }

  /** Through the real socket and a proxy's x-forwarded-for. */
  async function fetchVia(app: TestApp, path: string, ip: string) {
    const res = await fetch(`${app.baseUrl}${path}`, { headers: { 'x-forwarded-for': `${ip}, 192.0.2.1` } });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as Json };
  }

  beforeAll(async () => {
    release = await lockSharedRedisDb(REDIS_DB);
    redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.flushdb();
    db = await createTestDatabase('http_rate_limit');
    const proxied = { TRUST_PROXY: 'true', HTTP_RATE_LIMIT: String(LIMIT), HTTP_RATE_WINDOW_S: String(WINDOW_S) };
    a = await start('a', proxied);
    b = await start('b', proxied);
    // No window: the default, 60 s.
    direct = await start('direct', { HTTP_RATE_LIMIT: '3' });
    unlimited = await start('off', {});
  }, 5 * 60_000);

  afterAll(async () => {
    for (const app of [a, b, direct, unlimited]) await app?.close();
    await db?.drop();
    if (redis) {
      await redis.flushdb().catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
    await release?.();
  });

  it('reads the window default: HTTP_RATE_LIMIT alone refills over 60 s', () => {
    expect(direct.config.httpRateLimit).toEqual({ capacity: 3, windowS: 60 });
    expect(unlimited.config.httpRateLimit).toBeUndefined();
  });

  it('5 requests pass, the 6th is 429 with Retry-After in whole seconds and the error body; the bucket is in Redis', async () => {
    const ip = randomIp();
    for (let i = 0; i < LIMIT; i++) expect((await fetchVia(a, '/api/cache/stats', ip)).status).toBe(200);
    const refused = await fetchVia(a, '/api/cache/stats', ip);
    expect(refused.status).toBe(429);
    // A token comes back every 60 / 5 = 12 s; the header rounds up.
    expect(refused.retryAfter).toMatch(/^\d+$/);
    expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(11);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(12);
    expect(refused.body).toEqual({ statusCode: 429, message: expect.any(String) });
    expect(refused.body.message.length).toBeGreaterThan(0);

    expect(await scanKeys(redis, `telemetry:ratelimit:*{${ip}}`)).toEqual([`telemetry:ratelimit:http:{${ip}}`]);
    expect(await redis.pttl(`telemetry:ratelimit:http:{${ip}}`)).toBeGreaterThan(0);
  });

  it('every /api route is limited, whatever the method or the answer (404, 403)', async () => {
    const ip = randomIp();
    const h = { 'x-forwarded-for': ip };
    expect((await get(a, `/api/devices/${run}-nope/latest`, h)).status).toBe(404);
    expect((await get(a, '/api/devices?limit=1', h)).status).toBe(200);
    expect((await a.app.inject({ method: 'POST', url: '/api/cache/clear', headers: h })).statusCode).toBe(403);
    expect((await get(a, '/api/dashboard/metrics', h)).status).toBe(200);
    expect((await get(a, `/api/devices/${run}-nope/stats`, h)).status).toBe(404);
    const refused = await a.app.inject({ method: 'DELETE', url: `/api/devices/${run}-nope`, headers: h });
    expect(refused.statusCode).toBe(429);
    expect(JSON.parse(refused.body)).toEqual({ statusCode: 429, message: expect.any(String) });
  });

  it('/metrics, /health, /health/live, /docs and the page are never limited', async () => {
    const ip = randomIp();
    const h = { 'x-forwarded-for': ip };
    for (let i = 0; i < LIMIT; i++) await get(a, '/api/cache/stats', h);
    expect((await get(a, '/api/cache/stats', h)).status).toBe(429);
    for (let i = 0; i < 3; i++) {
      expect((await get(a, '/metrics', h)).status).toBe(200);
      expect((await get(a, '/health/live', h)).status).toBe(200);
      expect((await get(a, '/health', h)).status).toBe(200);
      expect((await get(a, '/', h)).status).toBe(200);
      expect((await get(a, '/dashboard.js', h)).status).toBe(200);
      expect((await get(a, '/docs', h)).status).not.toBe(429);
      expect((await get(a, '/docs/json', h)).status).not.toBe(429);
    }
    expect((await get(a, '/api/cache/stats', h)).status).toBe(429);
  });

  it('two instances share the bucket through Redis: 3 on A and 2 on B pass, the next on either is 429', async () => {
    const ip = randomIp();
    const h = { 'x-forwarded-for': ip };
    for (let i = 0; i < 3; i++) expect((await get(a, '/api/cache/stats', h)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await get(b, '/api/cache/stats', h)).status).toBe(200);
    const onB = await get(b, '/api/cache/stats', h);
    expect(onB.status).toBe(429);
    expect(Number(onB.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await get(a, '/api/cache/stats', h)).status).toBe(429);
    expect(await scanKeys(redis, `telemetry:ratelimit:*{${ip}}`)).toEqual([`telemetry:ratelimit:http:{${ip}}`]);
  });

  it('with TRUST_PROXY the first x-forwarded-for entry is the client: each has its own bucket', async () => {
    const first = randomIp();
    const second = randomIp();
    for (let i = 0; i < LIMIT; i++) await get(a, '/api/cache/stats', { 'x-forwarded-for': `${first}, 192.0.2.9` });
    expect((await get(a, '/api/cache/stats', { 'x-forwarded-for': `${first}, 192.0.2.10` })).status).toBe(429);
    // Same proxy, another client.
    expect((await get(a, '/api/cache/stats', { 'x-forwarded-for': `${second}, 192.0.2.9` })).status).toBe(200);
  });

  it('without TRUST_PROXY x-forwarded-for is ignored: the socket address is the client', async () => {
    const socketIp = randomIp();
    for (let i = 0; i < 3; i++) {
      const res = await get(direct, '/api/cache/stats', { 'x-forwarded-for': randomIp() }, socketIp);
      expect(res.status).toBe(200);
    }
    // A forged header does not buy a fresh bucket.
    expect((await get(direct, '/api/cache/stats', { 'x-forwarded-for': randomIp() }, socketIp)).status).toBe(429);
    // Another socket address does.
    expect((await get(direct, '/api/cache/stats', {}, randomIp())).status).toBe(200);
    expect(await scanKeys(redis, `telemetry:ratelimit:*{${socketIp}}`)).toEqual([`telemetry:ratelimit:http:{${socketIp}}`]);
  });

  it('the HTTP and WebSocket buckets of one client IP are separate', async () => {
    const ip = randomIp();
    for (let i = 0; i < LIMIT + 1; i++) await get(a, '/api/cache/stats', { 'x-forwarded-for': ip });
    expect((await get(a, '/api/cache/stats', { 'x-forwarded-for': ip })).status).toBe(429);
    const ws = new WebSocket(`${a.baseUrl.replace('http', 'ws')}/ws`, { headers: { 'x-forwarded-for': ip } });
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const answer = new Promise<Json>((resolve) => ws.once('message', (data: WebSocket.RawData) => resolve(JSON.parse(String(data)))));
      ws.send(JSON.stringify({ event: 'unsubscribe', data: { deviceId: 'x' } }));
      expect(await answer).toEqual({ event: 'unsubscribed', data: { deviceId: 'x' } });
    } finally {
      ws.terminate();
    }
    expect(await scanKeys(redis, `telemetry:ratelimit:*{${ip}}`)).toEqual([`telemetry:ratelimit:http:{${ip}}`, `telemetry:ratelimit:{${ip}}`]);
  });

  it('with HTTP_RATE_LIMIT unset nothing is limited and no bucket is written', async () => {
    const socketIp = randomIp();
    for (let i = 0; i < 30; i++) expect((await get(unlimited, '/api/cache/stats', {}, socketIp)).status).toBe(200);
    expect(await scanKeys(redis, `telemetry:ratelimit:*{${socketIp}}`)).toEqual([]);
  });
});
