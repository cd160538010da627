// TokenBucketStorage, the @nestjs/throttler storage behind both rate limits,
// without the app: against the shared Redis (database 7, locked, flushed; keys
// carry random client ids) for the token-bucket record, key names and sharing
// between instances, and against a private redis-server this test kills and
// pauses for the fallback to memory and the way back.
import { Logger } from '@nestjs/common';
import Redis from 'ioredis';
import { loadConfig } from '../../src/config/load-config';
import { TelemetryMetrics } from '../../src/metrics/telemetry-metrics';
import { HTTP_THROTTLER, WS_THROTTLER } from '../../src/rate-limit/throttlers';
import { TokenBucketStorage } from '../../src/rate-limit/token-bucket-storage';
import { RedisConnection } from '../../src/redis/redis-connection';
import { waitFor } from '../support/free-port';
import { PrivateRedis } from '../support/private-redis';
import { scanKeys } from '../support/redis-keys';
import { describeWithServers, sharedRedisUrl } from '../support/servers';
import { lockSharedRedisDb } from '../support/ws-client';

const REDIS_DB = 7;
const SHARED_URL = sharedRedisUrl(REDIS_DB);

/** A fresh client id per use, so buckets never meet across tests or runs. */
const client = () => `c-${Math.random().toString(36).slice(2, 10)}`;

async function connection(url: string): Promise<RedisConnection> {
  const conn = new RedisConnection(loadConfig({ REDIS_URL: url }), new TelemetryMetrics());
  await conn.start();
  await waitFor(async () => conn.isUp, 10_000, `Redis ${url} up`);
  return conn;
}

// RedisConnection logs each state change; the assertions here cover them.
Logger.overrideLogger(false);

describeWithServers(['redis'])('TokenBucketStorage against the shared Redis', () => {
  let release: (() => Promise<void>) | undefined;
  let redis: Redis;
  let connA: RedisConnection;
  let connB: RedisConnection;
  let a: TokenBucketStorage;
  let b: TokenBucketStorage;

  beforeAll(async () => {
    release = await lockSharedRedisDb(REDIS_DB);
    redis = new Redis(SHARED_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.flushdb();
    connA = await connection(SHARED_URL);
    connB = await connection(SHARED_URL);
    a = new TokenBucketStorage(connA);
    b = new TokenBucketStorage(connB);
  }, 10 * 60_000);

  afterAll(async () => {
    await connA?.onApplicationShutdown();
    await connB?.onApplicationShutdown();
    if (redis) {
      await redis.flushdb().catch(() => undefined);
      await redis.quit().catch(() => undefined);
    }
    await release?.();
  });

  it('a bucket of 5 refilling in 10 s: 5 pass, the 6th is refused with retryAfterMs ≤ 2000 (one token) and whole seconds for Retry-After', async () => {
    const ip = client();
    const passed = [];
    for (let i = 0; i < 5; i++) passed.push(await a.increment(ip, 10_000, 5, 10_000, HTTP_THROTTLER));
    expect(passed.every((r) => !r.isBlocked && r.retryAfterMs === 0 && r.timeToBlockExpire === 0)).toBe(true);
    // Tokens in use: 1, 2, … 5 (a refill of a fraction during the run does not add a whole token).
    expect(passed.map((r) => r.totalHits)).toEqual([1, 2, 3, 4, 5]);
    // The bucket is full again 2 s per used token later.
    expect(passed[0].timeToExpire).toBe(2);
    expect(passed[4].timeToExpire).toBe(10);
    const refused = await a.increment(ip, 10_000, 5, 10_000, HTTP_THROTTLER);
    expect(refused.isBlocked).toBe(true);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(2000);
    expect(refused.timeToBlockExpire).toBe(Math.ceil(refused.retryAfterMs / 1000));
    expect(refused.totalHits).toBe(6);
  });

  it('keys: telemetry:ratelimit:http:{ip} for HTTP, telemetry:ratelimit:{ip} for WebSocket, with a TTL; the two buckets are separate', async () => {
    const ip = client();
    for (let i = 0; i < 3; i++) await a.increment(ip, 60_000, 3, 60_000, HTTP_THROTTLER);
    expect((await a.increment(ip, 60_000, 3, 60_000, HTTP_THROTTLER)).isBlocked).toBe(true);
    const ws = await a.increment(ip, 60_000, 3, 60_000, WS_THROTTLER);
    expect(ws.isBlocked).toBe(false);
    expect(ws.totalHits).toBe(1);
    expect(await scanKeys(redis, `*${ip}*`)).toEqual([`telemetry:ratelimit:http:{${ip}}`, `telemetry:ratelimit:{${ip}}`]);
    for (const key of [`telemetry:ratelimit:http:{${ip}}`, `telemetry:ratelimit:{${ip}}`]) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(120_000);
    }
  });

  it('two instances share one bucket: 3 taken through A and 2 through B empty it for both', async () => {
    const ip = client();
    for (let i = 0; i < 3; i++) expect((await a.increment(ip, 60_000, 5, 60_000, HTTP_THROTTLER)).isBlocked).toBe(false);
    for (let i = 0; i < 2; i++) expect((await b.increment(ip, 60_000, 5, 60_000, HTTP_THROTTLER)).isBlocked).toBe(false);
    expect((await b.increment(ip, 60_000, 5, 60_000, HTTP_THROTTLER)).isBlocked).toBe(true);
    expect((await a.increment(ip, 60_000, 5, 60_000, HTTP_THROTTLER)).isBlocked).toBe(true);
  });

  it('refills continuously: refused before the hinted wait, a token is back after it', async () => {
    const ip = client();
    for (let i = 0; i < 4; i++) await a.increment(ip, 1000, 4, 1000, WS_THROTTLER);
    const refused = await a.increment(ip, 1000, 4, 1000, WS_THROTTLER);
    expect(refused.isBlocked).toBe(true);
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(250);
    await new Promise((resolve) => setTimeout(resolve, refused.retryAfterMs + 5));
    expect((await a.increment(ip, 1000, 4, 1000, WS_THROTTLER)).isBlocked).toBe(false);
  });
});

describeWithServers(['redis'])('TokenBucketStorage when Redis dies or hangs (private redis-server)', () => {
  let server: PrivateRedis;
  let conn: RedisConnection;
  let storage: TokenBucketStorage;
  let probe: Redis;

  beforeAll(async () => {
    server = await PrivateRedis.start();
    conn = await connection(server.url);
    storage = new TokenBucketStorage(conn);
    probe = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 200 });
    probe.on('error', () => undefined);
    await probe.connect();
  }, 60_000);

  afterAll(async () => {
    probe?.disconnect();
    await conn?.onApplicationShutdown();
    await server?.destroy();
  });

  async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
    const started = performance.now();
    const value = await fn();
    return { value, ms: performance.now() - started };
  }

  it('uses Redis while it is up, falls back to memory when it dies and keeps limiting, and returns to Redis', async () => {
    const ip = client();
    expect(conn.isUp).toBe(true);
    expect((await storage.increment(ip, 60_000, 3, 60_000, HTTP_THROTTLER)).totalHits).toBe(1);
    expect(await probe.exists(`telemetry:ratelimit:http:{${ip}}`)).toBe(1);

    await server.kill('SIGKILL');
    // Answers at once from memory (a fresh, per-instance bucket), and the limit still holds there.
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await timed(() => storage.increment(ip, 60_000, 3, 60_000, HTTP_THROTTLER)));
    expect(answers.map((r) => r.value.isBlocked)).toEqual([false, false, false, true]);
    expect(answers[3].value.retryAfterMs).toBeGreaterThan(0);
    expect(answers[3].value.timeToBlockExpire).toBeGreaterThanOrEqual(1);
    // Generous for a loaded machine; a client waiting for a dead Redis would take seconds.
    expect(Math.max(...answers.map((r) => r.ms))).toBeLessThan(1000);
    expect(conn.isUp).toBe(false);

    await server.restart();
    await waitFor(async () => conn.isUp, 15_000, 'RedisConnection up again');
    await waitFor(async () => probe.status === 'ready', 15_000, 'probe reconnected');
    const back = await storage.increment(ip, 60_000, 3, 60_000, HTTP_THROTTLER);
    // The restarted server is empty: a new bucket there, not the memory one.
    expect(back.isBlocked).toBe(false);
    expect(back.totalHits).toBe(1);
    expect(await probe.exists(`telemetry:ratelimit:http:{${ip}}`)).toBe(1);
  }, 60_000);

  it('a hung Redis (SIGSTOP) costs one request at most the command timeout, then memory answers', async () => {
    const ip = client();
    expect(conn.isUp).toBe(true);
    server.pause();
    try {
      const first = await timed(() => storage.increment(ip, 60_000, 2, 60_000, WS_THROTTLER));
      expect(first.value.isBlocked).toBe(false);
      expect(first.ms).toBeLessThan(1000);
      const rest = [];
      for (let i = 0; i < 2; i++) rest.push(await timed(() => storage.increment(ip, 60_000, 2, 60_000, WS_THROTTLER)));
      expect(rest.map((r) => r.value.isBlocked)).toEqual([false, true]);
      expect(conn.isUp).toBe(false);
    } finally {
      server.resume();
    }
    await waitFor(async () => conn.isUp, 15_000, 'RedisConnection up again');
  }, 60_000);
});
