// The partitioning migration and maintenance on embedded PostgreSQL (PGlite),
// which `npm start` uses when DATABASE_URL is unset: an install of the
// previous release with rows is upgraded in place, then retention runs with
// an injected clock and writes keep working. Needs no shared server.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { Client } from 'pg';
import { loadConfig } from '../../src/config/load-config';
import { DatabaseService } from '../../src/storage/database.service';
import { EmbeddedPostgres } from '../../src/storage/embedded-postgres';
import { CATCHALL_NAME, DAY_MS, PartitionMaintainer, dailyPartitionName, floorDay } from '../../src/storage/partition-maintainer';
import { SampleWriter } from '../../src/storage/sample-writer';
import { layoutProblems, migrateToBeforePartitioning, partitionLayout, rowsPerPartition } from '../support/partitions';

const HOUR = 3600_000;

describe('daily partitions of samples (embedded PGlite)', () => {
  let dir: string;
  let db: DatabaseService | undefined;
  const now = Date.now();
  const today = floorDay(now);
  const legacyTimes = [Date.UTC(2019, 5, 1), now - 20 * DAY_MS, now - 3 * DAY_MS, now - HOUR];

  beforeAll(async () => {
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    dir = await mkdtemp(join(tmpdir(), 'th-partitions-embedded-'));
    // An install of the previous release, with rows.
    const embedded = await EmbeddedPostgres.start(dir);
    try {
      await migrateToBeforePartitioning(embedded.url);
      const client = new Client({ connectionString: embedded.url });
      await client.connect();
      try {
        await client.query(
          `INSERT INTO samples (device_id, metric, ts, value) SELECT 'dev-e', 'temp', to_timestamp(t / 1000.0), 1 FROM unnest($1::float8[]) AS t`,
          [legacyTimes],
        );
        await client.query(
          `INSERT INTO hourly_aggregates (device_id, metric, bucket, count, sum, min, max)
           SELECT device_id, metric, date_trunc('hour', ts, 'UTC'), count(*), sum(value), min(value), max(value) FROM samples GROUP BY 1, 2, 3`,
        );
      } finally {
        await client.end();
      }
    } finally {
      await embedded.stop();
    }
    db = new DatabaseService(loadConfig({ DATA_DIR: dir }));
    await db.start();
  }, 120_000);

  afterAll(async () => {
    await db?.onApplicationShutdown();
    if (dir) await rm(dir, { recursive: true, force: true });
    jest.restoreAllMocks();
  });

  it('upgrades the old table in place: every row kept in the catch-all, daily partitions after it', async () => {
    expect(db!.isEmbedded).toBe(true);
    expect(await rowsPerPartition(db!)).toEqual({ [CATCHALL_NAME]: legacyTimes.length });
    const parts = await partitionLayout(db!);
    expect(layoutProblems(parts)).toEqual([]);
    expect(parts[0]).toEqual({ name: CATCHALL_NAME, from: null, to: floorDay(now - HOUR) + DAY_MS });
    expect(parts.at(-1)?.to).toBe(today + 8 * DAY_MS);
  });

  it('applies retention, still stores old timestamps afterwards, and recreates a missing partition on write', async () => {
    // Four days on with RETENTION_DAYS=2, the cutoff is now + 2 days: the old table's rows and every day ending by then go.
    const maintainer = new PartitionMaintainer(db!, 2, () => now + 4 * DAY_MS);
    const all = await maintainer.run();
    // minute_aggregates, laid out like samples by its migration, takes the very same steps.
    const steps = all.filter((s) => s.name.startsWith('samples_'));
    expect(all.filter((s) => !s.name.startsWith('samples_'))).toEqual(steps.map((s) => ({ ...s, name: s.name.replace(/^samples_/, 'minute_aggregates_') })));
    expect(steps.filter((s) => s.kind !== 'create').map((s) => s.kind)).toEqual([
      ...steps.filter((s) => s.kind === 'drop').map(() => 'drop'),
      'empty-catchall',
      'extend-catchall',
    ]);
    expect(steps.filter((s) => s.kind === 'drop').length).toBeGreaterThanOrEqual(1);
    expect(steps.filter((s) => s.kind === 'drop').every((s) => s.kind === 'drop' && s.to <= now + 2 * DAY_MS)).toBe(true);
    const parts = await partitionLayout(db!);
    expect(layoutProblems(parts)).toEqual([]);
    expect(parts[0].to).toBe(floorDay(now + 2 * DAY_MS));
    expect(await rowsPerPartition(db!)).toEqual({});
    expect(await db!.query(`SELECT count(*)::int AS n FROM hourly_aggregates`)).toEqual([{ n: legacyTimes.length }]);

    await db!.query(`DROP TABLE ${dailyPartitionName(floorDay(now + 3 * DAY_MS))}`);
    const writer = new SampleWriter(db!, maintainer);
    const batch = [
      { deviceId: 'dev-e', metric: 'temp', ts: now - 10 * DAY_MS, value: 2 },
      { deviceId: 'dev-e', metric: 'temp', ts: now + 3 * DAY_MS, value: 3 },
    ];
    expect(await writer.write(batch, [{ deviceId: 'dev-e', firstSeenMs: now, lastSeenMs: now }])).toEqual(batch);
    expect(await rowsPerPartition(db!)).toEqual({ [CATCHALL_NAME]: 1, [dailyPartitionName(floorDay(now + 3 * DAY_MS))]: 1 });
    expect(layoutProblems(await partitionLayout(db!))).toEqual([]);
  });
});
