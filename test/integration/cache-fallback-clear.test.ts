// The cache with Redis configured but unreachable: deletions go to the memory
// store, report what they removed (POST /api/cache/clear answers with this
// count), and are marked for the resync.
import { CacheService } from '../../src/cache/cache.service';
import { freePort } from '../support/free-port';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';

describeWithServers(['postgres'])('cache deletions while Redis is down', () => {
  let db: TestDatabase;
  let app: TestApp;

  beforeAll(async () => {
    db = await createTestDatabase('cache_fallback_clear');
    // Nothing listens on this port: Redis is configured and down from the start.
    app = await startTestApp({
      DATABASE_URL: db.url,
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      MQTT_URL: undefined,
      MQTT_PORT: '0',
      ADMIN_API_KEY: 'k',
    });
  });

  afterAll(async () => {
    await app?.close();
    await db?.drop();
  });

  it('counts what a pattern deletion removed from memory, on the service and on POST /api/cache/clear', async () => {
    const cache = app.get(CacheService);
    expect(cache.backend).toBe('memory');
    await cache.set('telemetry:stats:{a}', '{}', 60);
    await cache.set('telemetry:stats:{b}', '{}', 60);
    expect(await cache.delPattern('telemetry:stats:*')).toBe(2);

    await cache.set('telemetry:dashboard', '{}', 60);
    const res = await app.app.inject({ method: 'POST', url: '/api/cache/clear', headers: { 'x-api-key': 'k' }, payload: { pattern: 'telemetry:dashboard' } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ cleared: 1 });
  });

  it('counts keys deleted from memory', async () => {
    const cache = app.get(CacheService);
    await cache.set('telemetry:latest:{c}', '{}', 60);
    expect(await cache.del(['telemetry:latest:{c}', 'telemetry:latest:{missing}'])).toBe(1);
  });
});
