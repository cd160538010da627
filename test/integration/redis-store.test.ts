// RedisStore.mergeLatest on the real Redis: one script call merges a whole
// batch of device hashes, so the per-key rules (only a strictly newer ts
// replaces a field, "~complete" only when the set is full, TTL on every key)
// must hold for every key of the call, including across the per-call chunks,
// and on both of the script's paths: all points newer than the hash's "~ts"
// (one HSET) and the field-by-field comparison otherwise.
import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { RedisStore } from '../../src/cache/redis-store';
import { describeWithServers, SHARED_REDIS_URL } from '../support/servers';
import { scanKeys } from '../support/redis-keys';

describeWithServers(['redis'])('RedisStore latest merges on the real Redis', () => {
  // Own key prefix on the shared server: no other test sees these keys.
  const prefix = `th-test-store-${randomBytes(4).toString('hex')}:`;
  let redis: Redis;
  let store: RedisStore;

  beforeAll(async () => {
    redis = new Redis(SHARED_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    store = new RedisStore(redis);
  });

  afterAll(async () => {
    const keys = await scanKeys(redis, `${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('merges many keys in one batch: newer points replace, older and equal ones do not, each key gets the TTL', async () => {
    const keys = Array.from({ length: 2500 }, (_, i) => `${prefix}latest:{dev-${i}}`);
    await store.mergeLatest(
      keys.map((key, i) => ({
        key,
        points: [
          ['t', 1000, i],
          ['h', 1000, -i],
        ],
      })),
      60,
      false,
    );
    // Second batch: even devices send a newer t, odd devices an older one; h repeats its ts.
    await store.mergeLatest(
      keys.map((key, i) => ({
        key,
        points: [
          ['t', i % 2 === 0 ? 2000 : 500, i + 0.5],
          ['h', 1000, 42],
        ],
      })),
      60,
      false,
    );
    const hashes = await Promise.all(keys.map((key) => redis.hgetall(key)));
    hashes.forEach((hash, i) => {
      expect(hash).toEqual({ t: i % 2 === 0 ? `2000|${i + 0.5}` : `1000|${i}`, h: `1000|${-i}`, '~ts': i % 2 === 0 ? '2000' : '1000' });
    });
    const ttls = await Promise.all([keys[0], keys[1499], keys[2499]].map((key) => redis.pttl(key)));
    for (const ttl of ttls) expect(ttl).toBeGreaterThan(50_000);
    // Not marked complete: a read falls through to the database.
    expect(await store.getLatest(keys[0])).toBeNull();
  });

  it('a complete merge marks every key of the call readable', async () => {
    const keys = [`${prefix}latest:{a}`, `${prefix}latest:{b}`];
    await store.mergeLatest(
      [
        { key: keys[0], points: [['t', 5, 1.5]] },
        {
          key: keys[1],
          points: [
            ['t', 6, 2.5],
            ['h', 7, 3],
          ],
        },
      ],
      60,
      true,
    );
    expect(await store.getLatest(keys[0])).toEqual({ t: { ts: 5, value: 1.5 } });
    expect(await store.getLatest(keys[1])).toEqual({ t: { ts: 6, value: 2.5 }, h: { ts: 7, value: 3 } });
  });

  it('in-order batches take the one-HSET path and still keep every metric at its newest point', async () => {
    const key = `${prefix}latest:{in-order}`;
    for (let ts = 1; ts <= 5; ts++) {
      // Metric "b" only every other batch: a field not in the update stays as it was.
      const points: Array<[string, number, number]> = [['a', ts * 10, ts]];
      if (ts % 2 === 1) points.push(['b', ts * 10, -ts]);
      await store.mergeLatest([{ key, points }], 60, false);
    }
    expect(await redis.hgetall(key)).toEqual({ a: '50|5', b: '50|-5', '~ts': '50' });
    // A late point for a metric the hash has never had is taken; a late one for a known metric is not.
    await store.mergeLatest(
      [
        {
          key,
          points: [
            ['c', 15, 7],
            ['a', 20, 99],
          ],
        },
      ],
      60,
      false,
    );
    expect(await redis.hgetall(key)).toEqual({ a: '50|5', b: '50|-5', c: '15|7', '~ts': '50' });
  });

  it('a hash without "~ts" (written before it existed) is merged field by field, never losing a newer value', async () => {
    const key = `${prefix}latest:{old-format}`;
    await redis.hset(key, 't', '500|1', 'h', '100|2');
    await store.mergeLatest(
      [
        {
          key,
          points: [
            ['t', 300, 9],
            ['h', 200, 8],
          ],
        },
      ],
      60,
      false,
    );
    // "~ts" starts at the newest field already there, not at the newest point merged.
    expect(await redis.hgetall(key)).toEqual({ t: '500|1', h: '200|8', '~ts': '500' });
    expect(await store.getLatest(key)).toBeNull();
    // So a later batch that is newer than what it merged but older than t is still compared per field.
    await store.mergeLatest(
      [
        {
          key,
          points: [
            ['t', 400, 5],
            ['h', 400, 6],
          ],
        },
      ],
      60,
      false,
    );
    expect(await redis.hgetall(key)).toEqual({ t: '500|1', h: '400|6', '~ts': '500' });
    await store.mergeLatest([{ key, points: [['t', 600, 3]] }], 60, true);
    expect(await store.getLatest(key)).toEqual({ t: { ts: 600, value: 3 }, h: { ts: 400, value: 6 } });
    expect(await redis.hget(key, '~ts')).toBe('600');
  });

  it('an empty batch is no call at all', async () => {
    await expect(store.mergeLatest([], 60, false)).resolves.toBeUndefined();
  });
});
