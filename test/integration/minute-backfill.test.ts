// Upgrading an install that already has samples: the minute-rollup migration
// lays minute_aggregates out like samples (catch-all and daily partitions)
// and backfills it so it equals a GROUP BY minute over samples, on the real
// PostgreSQL and on embedded PGlite; ingestion afterwards keeps it equal.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { loadConfig } from '../../src/config/load-config';
import { DatabaseService } from '../../src/storage/database.service';
import { EmbeddedPostgres } from '../../src/storage/embedded-postgres';
import { dataSourceOptions } from '../../src/storage/data-source-options';
import { MIGRATIONS } from '../../src/storage/migrations';
import { MinuteAggregates1732500000000 } from '../../src/storage/migrations/1732500000000-minute-aggregates';
import { PartitionMaintainer } from '../../src/storage/partition-maintainer';
import { SampleWriter } from '../../src/storage/sample-writer';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('load');

const HOUR = 3600_000;
const DAY = 24 * HOUR;

async function migrateToBeforeMinuteAggregates(url: string): Promise<void> {
  const source = new DataSource({ ...dataSourceOptions(url, 1), migrations: MIGRATIONS.slice(0, MIGRATIONS.indexOf(MinuteAggregates1732500000000)) });
  await source.initialize();
  try {
    await source.runMigrations({ transaction: 'each' });
  } finally {
    await source.destroy();
  }
}

/** Samples of the previous release (and their hourly rollups, as its writer kept them): old ones in the catch-all, recent ones in daily partitions. */
async function seedPreviousRelease(url: string, now: number): Promise<number> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const times: number[] = [];
    for (let i = 0; i < 3000; i++) times.push(now - 40 * DAY + i * 18 * 60_000 + (i % 7) * 111);
    for (let i = 0; i < 2000; i++) times.push(now - 2 * HOUR + i * 3_000 + (i % 3));
    await client.query(
      `INSERT INTO samples (device_id, metric, ts, value)
       SELECT 'dev-' || (i % 3), CASE WHEN i % 2 = 0 THEN 'temp' ELSE 'hum' END, to_timestamp(t / 1000.0), round((sin(i) * 40)::numeric, 3)::float8
       FROM unnest($1::float8[]) WITH ORDINALITY AS x(t, i)`,
      [times],
    );
    await client.query(
      `INSERT INTO hourly_aggregates (device_id, metric, bucket, count, sum, min, max)
       SELECT device_id, metric, date_trunc('hour', ts, 'UTC'), count(*), sum(value), min(value), max(value) FROM samples GROUP BY 1, 2, 3`,
    );
    return times.length;
  } finally {
    await client.end();
  }
}

interface Queryable {
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
}

/** Rows of minute_aggregates that differ from a GROUP BY minute over samples ([] when equal). */
function drift(db: Queryable): Promise<unknown[]> {
  return db.query(`
    WITH want AS (
      SELECT device_id, metric, date_trunc('minute', ts, 'UTC') AS bucket, count(*)::int AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
        min(ts) AS first_ts, (array_agg(value ORDER BY ts))[1] AS first, max(ts) AS last_ts, (array_agg(value ORDER BY ts DESC))[1] AS last
      FROM samples GROUP BY 1, 2, 3
    )
    SELECT 'missing' AS side, w.* FROM want w LEFT JOIN minute_aggregates h USING (device_id, metric, bucket)
      WHERE (h.count, h.min, h.max, h.first_ts, h.first, h.last_ts, h.last) IS DISTINCT FROM (w.count, w.min, w.max, w.first_ts, w.first, w.last_ts, w.last)
         OR abs(h.sum - w.sum) > 1e-9 * greatest(1, abs(w.sum))
    UNION ALL
    SELECT 'extra', h.device_id, h.metric, h.bucket, h.count, h.sum, h.min, h.max, h.first_ts, h.first, h.last_ts, h.last FROM minute_aggregates h LEFT JOIN want w USING (device_id, metric, bucket) WHERE w.device_id IS NULL`);
}

/** Partition bounds of a table as text, child names with the table prefix removed. */
async function layout(db: Queryable, table: string): Promise<string[]> {
  const rows = await db.query<{ name: string; bound: string }>(
    `SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = $1::regclass ORDER BY 1`,
    [table],
  );
  return rows.map((r) => `${r.name.slice(table.length)} ${r.bound}`);
}

async function checkUpgraded(db: DatabaseService, seeded: number, now: number): Promise<void> {
  const [{ n }] = await db.query<{ n: number }>(`SELECT sum(count)::int AS n FROM minute_aggregates`);
  expect(n).toBe(seeded);
  expect(await drift(db)).toEqual([]);
  expect(await layout(db, 'minute_aggregates')).toEqual(await layout(db, 'samples'));
  const [{ fillfactor }] = await db.query<{ fillfactor: string | null }>(
    `SELECT (SELECT option_value FROM pg_options_to_table(reloptions) WHERE option_name = 'fillfactor') AS fillfactor FROM pg_class WHERE relname = 'minute_aggregates_catchall'`,
  );
  expect(fillfactor).toBe('50');
  // Ingestion after the upgrade adds to the backfilled rows (same minutes) and keeps the tier equal.
  const writer = new SampleWriter(db, new PartitionMaintainer(db, undefined));
  const batch = [
    { deviceId: 'dev-0', metric: 'temp', ts: now - 2 * HOUR + 4_500, value: 99 },
    { deviceId: 'dev-1', metric: 'hum', ts: now - 40 * DAY + 30, value: -99 },
    { deviceId: 'dev-9', metric: 'temp', ts: now, value: 1 },
  ];
  await writer.write(
    batch,
    batch.map((s) => ({ deviceId: s.deviceId, firstSeenMs: now, lastSeenMs: now })),
  );
  expect(await drift(db)).toEqual([]);
}

describeWithServers(['postgres'])('minute rollup migration on an install with samples (real PostgreSQL)', () => {
  let testDb: TestDatabase;
  let db: DatabaseService | undefined;
  const now = Date.now();
  let seeded = 0;

  beforeAll(async () => {
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    testDb = await createTestDatabase('minute_backfill');
    await migrateToBeforeMinuteAggregates(testDb.url);
    seeded = await seedPreviousRelease(testDb.url, now);
    db = new DatabaseService(loadConfig({ DATABASE_URL: testDb.url }));
    await db.start();
  }, 120_000);

  afterAll(async () => {
    await db?.onApplicationShutdown();
    await testDb?.drop();
    jest.restoreAllMocks();
  });

  it('backfills minute_aggregates to equal samples, partitioned like samples, and ingestion keeps it equal', async () => {
    await checkUpgraded(db!, seeded, now);
  });
});

describe('minute rollup migration on an install with samples (embedded PGlite)', () => {
  let dir: string;
  let db: DatabaseService | undefined;
  const now = Date.now();
  let seeded = 0;

  beforeAll(async () => {
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    dir = await mkdtemp(join(tmpdir(), 'th-minute-backfill-'));
    const embedded = await EmbeddedPostgres.start(dir);
    try {
      await migrateToBeforeMinuteAggregates(embedded.url);
      seeded = await seedPreviousRelease(embedded.url, now);
    } finally {
      await embedded.stop();
    }
    db = new DatabaseService(loadConfig({ DATA_DIR: dir }));
    await db.start();
  }, 180_000);

  afterAll(async () => {
    await db?.onApplicationShutdown();
    if (dir) await rm(dir, { recursive: true, force: true });
    jest.restoreAllMocks();
  });

  it('backfills minute_aggregates to equal samples, partitioned like samples, and ingestion keeps it equal', async () => {
    expect(db!.isEmbedded).toBe(true);
    await checkUpgraded(db!, seeded, now);
  });
});
