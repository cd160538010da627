// RedisStore.mergeLatest on the real Redis: one script call merges a whole
// batch of device hashes, so the per-key rules (only a strictly newer ts
// replaces a field, "~complete" only when the set is full, TTL on every key)
// must hold for every key of the call, including across the per-call chunks.
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
      keys.map((key, i) => ({ key, points: [['t', 1000, i], ['h', 1000, -i]] })),
      60,
      false,
    );
    // Second batch: even devices send a newer t, odd devices an older one; h repeats its ts.
    await store.mergeLatest(
      keys.map((key, i) => ({ key, points: [['t', i % 2 === 0 ? 2000 : 500, i + 0.5], ['h', 1000, 42]] })),
      60,
      false,
    );
    const hashes = await Promise.all(keys.map((key) => redis.hgetall(key)));
    hashes.forEach((hash, i) => {
      expect(hash).toEqual({ t: i % 2 === 0 ? `2000|${i + 0.5}` : `1000|${i}`, h: `1000|${-i}` });
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
        { key: keys[1], points: [['t', 6, 2.5], ['h', 7, 3]] },
      ],
      60,
      true,
    );
    expect(await store.getLatest(keys[0])).toEqual({ t: { ts: 5, value: 1.5 } });
    expect(await store.getLatest(keys[1])).toEqual({ t: { ts: 6, value: 2.5 }, h: { ts: 7, value: 3 } });
  });

  it('an empty batch is no call at all', async () => {
    await expect(store.mergeLatest([], 60, false)).resolves.toBeUndefined();
  });
});
