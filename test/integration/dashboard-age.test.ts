// GET /api/dashboard/metrics is cached for CACHE_TTL_DASHBOARD_S (5 min by
// default); its `Age` header tells a client (the dashboard page) how old the
// figures are: 0 when just computed, then the seconds since, from the cache
// entry's remaining lifetime, on Redis and on the memory store alike.
import Redis from 'ioredis';
import { cacheKeys } from '../../src/redis/redis-names';
import { describeWithServers, serversAvailable, sharedRedisUrl } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('timing');

const REDIS_DB = 5;

describeWithServers(['postgres'])('Age of the fleet figures', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('dashboard_age');
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function expectAgeGrows(app: TestApp): Promise<void> {
    const first = await app.app.inject({ method: 'GET', url: '/api/dashboard/metrics' });
    expect(first.statusCode).toBe(200);
    expect(first.headers.age).toBe('0');
    await new Promise((resolve) => setTimeout(resolve, 3200));
    const second = await app.app.inject({ method: 'GET', url: '/api/dashboard/metrics' });
    expect(second.json()).toEqual(first.json()); // the same cached figures…
    const age = Number(second.headers.age);
    expect(age).toBeGreaterThanOrEqual(2); // …now about 3 s old (the store counts whole seconds)
    expect(age).toBeLessThanOrEqual(10);
  }

  it('on the memory store', async () => {
    const app = await startTestApp({ DATABASE_URL: db.url, REDIS_URL: undefined, MQTT_URL: undefined, MQTT_PORT: '0' });
    try {
      await expectAgeGrows(app);
    } finally {
      await app.close();
    }
  });

  (serversAvailable('redis') ? it : it.skip)('on Redis', async () => {
    const redis = new Redis(sharedRedisUrl(REDIS_DB), { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    await redis.unlink(cacheKeys.dashboard());
    const app = await startTestApp({ DATABASE_URL: db.url, REDIS_URL: sharedRedisUrl(REDIS_DB), MQTT_URL: undefined, MQTT_PORT: '0' });
    try {
      await expectAgeGrows(app);
      expect(await redis.ttl(cacheKeys.dashboard())).toBeGreaterThan(280);
    } finally {
      await app.close();
      await redis.unlink(cacheKeys.dashboard());
      await redis.quit();
    }
  });
});
