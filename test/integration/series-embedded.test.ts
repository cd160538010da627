// Time series on embedded PostgreSQL (PGlite), which `npm start` uses when
// DATABASE_URL is unset (see test/support/series-suite.ts). Needs no server.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseService } from '../../src/storage/database.service';
import { ADMIN_KEY, type SeriesBackend, defineSeriesSuite } from '../support/series-suite';
import { startTestApp } from '../support/test-app';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('load');

describe('time series (embedded PGlite)', () => {
  let dir: string | undefined;
  let backend: SeriesBackend | undefined;
  defineSeriesSuite(
    async () => {
      dir = await mkdtemp(join(tmpdir(), 'th-series-embedded-'));
      const app = await startTestApp({
        DATA_DIR: dir,
        DATABASE_URL: undefined,
        MQTT_URL: undefined,
        MQTT_PORT: '0',
        REDIS_URL: undefined,
        ADMIN_API_KEY: ADMIN_KEY,
        LOG_LEVEL: 'warn',
      });
      const db = app.get(DatabaseService);
      backend = { app, query: (sql, params) => db.query(sql, params) };
      return backend;
    },
    async () => {
      await backend?.app.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
    { csvRows: 30_000, csvBackPressure: false, propertyRuns: 8 },
  );
});
