// Time series on the real PostgreSQL (see test/support/series-suite.ts).
import { describeWithServers } from '../support/servers';
import { ADMIN_KEY, type SeriesBackend, defineSeriesSuite } from '../support/series-suite';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp } from '../support/test-app';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('load');

describeWithServers(['postgres'])('time series (real PostgreSQL)', () => {
  let testDb: TestDatabase | undefined;
  let backend: SeriesBackend | undefined;
  defineSeriesSuite(
    async () => {
      testDb = await createTestDatabase('series');
      const app = await startTestApp({
        DATABASE_URL: testDb.url,
        MQTT_URL: undefined,
        MQTT_PORT: '0',
        REDIS_URL: undefined,
        ADMIN_API_KEY: ADMIN_KEY,
        LOG_LEVEL: 'warn',
      });
      backend = { app, query: testDb.query };
      return backend;
    },
    async () => {
      await backend?.app.close();
      await testDb?.drop();
    },
    { csvRows: 400_000, csvBackPressure: true, propertyRuns: 30 },
  );
});
