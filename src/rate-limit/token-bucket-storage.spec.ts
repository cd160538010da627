// TokenBucketStorage's memory path (no Redis configured, or Redis down): the
// throttler record read as a token bucket, one bucket per throttler and
// client, and the Redis key names. The Redis path and the fallback between
// the two are in test/integration/rate-limit-storage.test.ts.
import type { RedisConnection } from '../redis/redis-connection';
import { HTTP_THROTTLER, throttlerLimit, throttlersFor, WS_THROTTLER } from './throttlers';
import { TokenBucketStorage } from './token-bucket-storage';
import { isApiPath } from './http-throttler.guard';
import { loadConfig } from '../config/load-config';

const noRedis = { configured: false, isUp: false } as RedisConnection;

describe('TokenBucketStorage without Redis', () => {
  it('lets capacity through, then refuses with the wait in ms and in whole seconds; a refusal costs no token', async () => {
    const storage = new TokenBucketStorage(noRedis);
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await storage.increment('10.0.0.1', 60_000, 3, 60_000, HTTP_THROTTLER));
    expect(results.map((r) => r.isBlocked)).toEqual([false, false, false, true]);
    expect(results.slice(0, 3).map((r) => r.totalHits)).toEqual([1, 2, 3]);
    expect(results[0].timeToExpire).toBe(20);
    const refused = results[3];
    expect(refused.retryAfterMs).toBeGreaterThan(19_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(20_000);
    expect(refused.timeToBlockExpire).toBe(20);
    expect(refused.totalHits).toBe(4);
    // Still refused, with no longer a wait: the refusal took nothing.
    const again = await storage.increment('10.0.0.1', 60_000, 3, 60_000, HTTP_THROTTLER);
    expect(again.isBlocked).toBe(true);
    expect(again.retryAfterMs).toBeLessThanOrEqual(refused.retryAfterMs);
  });

  it('keeps one bucket per throttler and client', async () => {
    const storage = new TokenBucketStorage(noRedis);
    expect((await storage.increment('10.0.0.2', 60_000, 1, 60_000, HTTP_THROTTLER)).isBlocked).toBe(false);
    expect((await storage.increment('10.0.0.2', 60_000, 1, 60_000, HTTP_THROTTLER)).isBlocked).toBe(true);
    expect((await storage.increment('10.0.0.2', 60_000, 1, 60_000, WS_THROTTLER)).isBlocked).toBe(false);
    expect((await storage.increment('10.0.0.3', 60_000, 1, 60_000, HTTP_THROTTLER)).isBlocked).toBe(false);
  });

  it('names Redis keys under telemetry:ratelimit: with the client in a hash tag (WebSocket keys unchanged)', () => {
    expect(TokenBucketStorage.key(WS_THROTTLER, '::ffff:127.0.0.1')).toBe('telemetry:ratelimit:{::ffff:127.0.0.1}');
    expect(TokenBucketStorage.key(HTTP_THROTTLER, '10.0.0.1')).toBe('telemetry:ratelimit:http:{10.0.0.1}');
  });
});

describe('throttlers', () => {
  it('ws always, from WS_RATE_LIMIT / WS_RATE_WINDOW_S; http only with HTTP_RATE_LIMIT (ttl in ms)', () => {
    expect(throttlersFor(loadConfig({})).map((t) => t.name)).toEqual([WS_THROTTLER]);
    const both = throttlersFor(loadConfig({ WS_RATE_LIMIT: '7', WS_RATE_WINDOW_S: '9', HTTP_RATE_LIMIT: '30', HTTP_RATE_WINDOW_S: '15' }));
    expect(throttlerLimit(both, WS_THROTTLER)).toEqual({ limit: 7, ttlMs: 9000 });
    expect(throttlerLimit({ throttlers: both }, HTTP_THROTTLER)).toEqual({ limit: 30, ttlMs: 15_000 });
    expect(() => throttlerLimit([], WS_THROTTLER)).toThrow(/"ws" throttler/);
  });
});

describe('isApiPath', () => {
  it.each([
    ['/api', true],
    ['/api/devices', true],
    ['/api/devices/:id/latest', true],
    ['/api?x=1', true],
    ['/apix', false],
    ['/metrics', false],
    ['/health', false],
    ['/health/live', false],
    ['/docs', false],
    ['/docs/json', false],
    ['/', false],
  ])('%s → %s', (path, limited) => {
    expect(isApiPath(path)).toBe(limited);
  });
});
