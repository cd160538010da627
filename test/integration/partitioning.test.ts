// Daily partitions of samples on the real PostgreSQL: the upgrade of an
// unpartitioned table with rows, partitions kept ahead, RETENTION_DAYS
// dropping whole days (with an injected clock, so days pass in a test), old
// timestamps still insertable afterwards, two maintainers at once, and the
// writer's retry when a partition is missing. Each group has its own database.
import { Logger } from '@nestjs/common';
import { loadConfig } from '../../src/config/load-config';
import type { Sample } from '../../src/telemetry/sample';
import { DatabaseService } from '../../src/storage/database.service';
import { CATCHALL_NAME, DAY_MS, PartitionMaintainer, type PartitionStep, dailyPartitionName, floorDay } from '../../src/storage/partition-maintainer';
import { SampleWriter } from '../../src/storage/sample-writer';
import { layoutProblems, migrateToBeforePartitioning, partitionLayout, rowsPerPartition } from '../support/partitions';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp } from '../support/test-app';

const HOUR = 3600_000;

/** Log lines of the partition maintainer (Nest Logger, context 'Partitions'); other output is kept quiet. */
function captureLogs(into: Array<Record<string, unknown>>): void {
  jest.spyOn(Logger.prototype, 'log').mockImplementation(function (this: Logger, message: unknown) {
    if ((this as unknown as { context?: string }).context === 'Partitions') into.push(message as Record<string, unknown>);
  });
}

async function startService(url: string): Promise<DatabaseService> {
  const db = new DatabaseService(loadConfig({ DATABASE_URL: url }));
  await db.start();
  return db;
}

const sample = (deviceId: string, metric: string, ts: number, value = 1): Sample => ({ deviceId, metric, ts, value });
const toMinutes = (name: string) => name.replace(/^samples_/, 'minute_aggregates_');
/** The steps taken on samples, after checking that minute_aggregates got the very same ones (its rollups go with its days). */
function mirrored(steps: PartitionStep[]): PartitionStep[] {
  const onSamples = steps.filter((s) => s.name.startsWith('samples_'));
  expect(steps.filter((s) => s.name.startsWith('minute_aggregates_'))).toEqual(onSamples.map((s) => ({ ...s, name: toMinutes(s.name) })));
  expect(steps).toHaveLength(2 * onSamples.length);
  return onSamples;
}
/** Log lines about partitions of samples, after checking that minute_aggregates logged the same about its own. */
function mirroredLogs(lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  const onSamples = lines.filter((l) => String(l.partition).startsWith('samples_'));
  const onMinutes = lines.filter((l) => String(l.partition).startsWith('minute_aggregates_'));
  expect(onMinutes.map((l) => [l.msg, l.partition])).toEqual(onSamples.map((l) => [l.msg, toMinutes(String(l.partition))]));
  return onSamples;
}
/** Moves the catch-all of samples and of minute_aggregates to end at `to` (both must be empty), as if the service had run since. */
async function moveCatchAll(db: TestDatabase, to: number): Promise<void> {
  for (const table of ['samples', 'minute_aggregates']) {
    await db.query(`ALTER TABLE ${table} DETACH PARTITION ${table}_catchall`);
    await db.query(`ALTER TABLE ${table} ATTACH PARTITION ${table}_catchall FOR VALUES FROM (MINVALUE) TO ('${new Date(to).toISOString()}')`);
  }
}
/** Rows of minute_aggregates that differ from a GROUP BY over samples ([] when the tier is exact). */
async function minuteTierDrift(db: TestDatabase): Promise<unknown[]> {
  return db.query(`
    WITH want AS (
      SELECT device_id, metric, date_trunc('minute', ts, 'UTC') AS bucket, count(*)::int AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
        min(ts) AS first_ts, (array_agg(value ORDER BY ts))[1] AS first, max(ts) AS last_ts, (array_agg(value ORDER BY ts DESC))[1] AS last
      FROM samples GROUP BY 1, 2, 3
    )
    , kept AS (SELECT device_id, metric, bucket, count, sum, min, max, first_ts, first, last_ts, last FROM minute_aggregates)
    (SELECT 'missing' AS side, * FROM want EXCEPT SELECT 'missing', * FROM kept)
    UNION ALL
    (SELECT 'extra', * FROM kept EXCEPT SELECT 'extra', * FROM want)`);
}
const seen = (samples: Sample[]) =>
  [...new Set(samples.map((s) => s.deviceId))].map((deviceId) => ({ deviceId, firstSeenMs: Date.now(), lastSeenMs: Date.now() }));

describeWithServers(['postgres'])('daily partitions of samples (real PostgreSQL)', () => {
  const logs: Array<Record<string, unknown>> = [];
  beforeAll(() => captureLogs(logs));
  beforeEach(() => {
    logs.length = 0;
  });
  afterAll(() => {
    jest.restoreAllMocks();
  });

  describe('upgrade from the unpartitioned table', () => {
    let testDb: TestDatabase;
    let db: DatabaseService;
    const now = Date.now();
    const today = floorDay(now);
    const legacy = [
      sample('dev-a', 'temp', Date.UTC(2019, 5, 1, 12)),
      sample('dev-a', 'temp', now - 40 * DAY_MS),
      sample('dev-a', 'hum', now - DAY_MS),
      sample('dev-b', 'temp', now - HOUR),
      sample('dev-b', 'temp', now + 20 * HOUR), // the parser accepts up to a day ahead
    ];

    beforeAll(async () => {
      testDb = await createTestDatabase('partition_upgrade');
      await migrateToBeforePartitioning(testDb.url);
      await testDb.query(
        `INSERT INTO samples (device_id, metric, ts, value)
         SELECT d, m, to_timestamp(ts_ms / 1000.0), v FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[]) AS t(d, m, ts_ms, v)`,
        [legacy.map((s) => s.deviceId), legacy.map((s) => s.metric), legacy.map((s) => s.ts), legacy.map((s) => s.value)],
      );
      expect(await testDb.query(`SELECT relkind FROM pg_class WHERE relname = 'samples'`)).toEqual([{ relkind: 'r' }]);
      db = await startService(testDb.url);
    });

    afterAll(async () => {
      await db?.onApplicationShutdown();
      await testDb?.drop();
    });

    it('keeps every row, in the old table now attached as the catch-all, and lays daily partitions after it', async () => {
      expect(await testDb.query(`SELECT relkind FROM pg_class WHERE relname = 'samples'`)).toEqual([{ relkind: 'p' }]);
      expect(await rowsPerPartition(testDb)).toEqual({ [CATCHALL_NAME]: legacy.length });
      const parts = await partitionLayout(testDb);
      expect(layoutProblems(parts)).toEqual([]);
      // The catch-all ends at the start of the day after the newest row (tomorrow + 1 day at most).
      const bound = floorDay(now + 20 * HOUR) + DAY_MS;
      expect(parts[0]).toEqual({ name: CATCHALL_NAME, from: null, to: bound });
      expect(parts.at(-1)?.to).toBe(today + 8 * DAY_MS);
      expect(parts.slice(1).every((p) => p.to! - p.from! === DAY_MS && p.name === dailyPartitionName(p.from!))).toBe(true);
      const [{ n }] = await testDb.query<{ n: number }>(`SELECT count(*)::int AS n FROM samples WHERE device_id = 'dev-a' AND metric = 'temp'`);
      expect(n).toBe(2);
    });

    it('keeps one primary key across all partitions: old points are not stored twice, new ones land in daily partitions', async () => {
      const maintainer = new PartitionMaintainer(db, undefined);
      const writer = new SampleWriter(db, maintainer);
      const batch = [...legacy, sample('dev-c', 'temp', now + 2 * DAY_MS)];
      const stored = await writer.write(batch, seen(batch));
      expect(stored).toEqual([sample('dev-c', 'temp', now + 2 * DAY_MS)]);
      expect(await rowsPerPartition(testDb)).toEqual({ [CATCHALL_NAME]: legacy.length, [dailyPartitionName(floorDay(now + 2 * DAY_MS))]: 1 });
      // The next release's maintainer finds the migrated layout complete.
      expect(await maintainer.run()).toEqual([]);
    });
  });

  describe('maintenance and retention', () => {
    let testDb: TestDatabase;
    let db: DatabaseService;
    const now = Date.now();
    const today = floorDay(now);

    beforeAll(async () => {
      testDb = await createTestDatabase('partition_retention');
      db = await startService(testDb.url);
    });

    afterAll(async () => {
      await db?.onApplicationShutdown();
      await testDb?.drop();
    });

    it('a fresh install has an empty catch-all ending today and today … today + 7', async () => {
      const parts = await partitionLayout(testDb);
      expect(parts.map((p) => p.name)).toEqual([CATCHALL_NAME, ...[0, 1, 2, 3, 4, 5, 6, 7].map((d) => dailyPartitionName(today + d * DAY_MS))]);
      expect(parts[0].to).toBe(today);
      expect(layoutProblems(parts)).toEqual([]);
    });

    it('creates the days ahead as the clock moves on, logging one line per partition', async () => {
      const steps = mirrored(await new PartitionMaintainer(db, undefined, () => now + 3 * DAY_MS).run());
      const expected = [8, 9, 10].map((d) => dailyPartitionName(today + d * DAY_MS));
      expect(steps.map((s) => s.name)).toEqual(expected);
      expect(mirroredLogs(logs).map((l) => [l.msg, l.partition])).toEqual(expected.map((name) => ['partition created', name]));
      expect((await partitionLayout(testDb)).at(-1)?.to).toBe(today + 11 * DAY_MS);
      expect(await new PartitionMaintainer(db, undefined, () => now + 3 * DAY_MS).run()).toEqual([]);
    });

    it('RETENTION_DAYS drops whole days older than the cutoff, empties the catch-all, keeps newer days and the rollups', async () => {
      // As if the service had run for 12 days: the empty catch-all ends 12 days ago and every day since exists.
      await moveCatchAll(testDb, today - 12 * DAY_MS);
      await new PartitionMaintainer(db, undefined, () => now).run();
      const writer = new SampleWriter(db, new PartitionMaintainer(db, undefined, () => now));
      const batch = [
        sample('dev-r', 'temp', Date.UTC(2019, 0, 1)), // catch-all
        sample('dev-r', 'temp', now - 11 * DAY_MS),
        sample('dev-r', 'temp', now - 6 * DAY_MS),
        sample('dev-r', 'temp', now - 5 * DAY_MS + HOUR),
        sample('dev-r', 'temp', now - 2 * DAY_MS),
        sample('dev-r', 'temp', now),
      ];
      await writer.write(batch, seen(batch));
      const rollupsBefore = await testDb.query(
        `SELECT bucket, sum(count)::int AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max FROM hourly_parts WHERE device_id = 'dev-r' GROUP BY bucket ORDER BY bucket`,
      );
      expect(rollupsBefore).toHaveLength(batch.length);
      logs.length = 0;

      const retention = new PartitionMaintainer(db, 5, () => now);
      const steps = mirrored(await retention.run());
      const cutoff = now - 5 * DAY_MS;
      const dropped = steps.filter((s) => s.kind === 'drop');
      // Days whose end is at or before the cutoff: the 12 days up to and including the one that ends at floorDay(cutoff).
      expect(dropped.map((s) => s.name)).toEqual(Array.from({ length: 7 }, (_, i) => dailyPartitionName(today - (12 - i) * DAY_MS)));
      expect(dropped.every((s) => s.kind === 'drop' && s.to <= cutoff)).toBe(true);
      expect(steps.filter((s) => s.kind !== 'drop').map((s) => s.kind)).toEqual(['empty-catchall', 'extend-catchall']);
      expect(mirroredLogs(logs).map((l) => l.msg)).toEqual([
        ...dropped.map(() => 'partition dropped (retention)'),
        'catch-all partition emptied (retention)',
        'catch-all partition extended',
      ]);
      expect(await minuteTierDrift(testDb)).toEqual([]);

      const parts = await partitionLayout(testDb);
      expect(layoutProblems(parts)).toEqual([]);
      expect(parts[0]).toEqual({ name: CATCHALL_NAME, from: null, to: floorDay(cutoff) });
      expect(parts[1].name).toBe(dailyPartitionName(floorDay(cutoff)));
      const left = await testDb.query<{ ts: Date }>(`SELECT ts FROM samples WHERE device_id = 'dev-r' ORDER BY ts`);
      expect(left.map((r) => r.ts.getTime())).toEqual([now - 5 * DAY_MS + HOUR, now - 2 * DAY_MS, now]);
      // The hourly tier is not subject to retention: minutes not folded yet were folded before their partitions went.
      expect(
        await testDb.query(
          `SELECT bucket, sum(count)::int AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max FROM hourly_parts WHERE device_id = 'dev-r' GROUP BY bucket ORDER BY bucket`,
        ),
      ).toEqual(rollupsBefore);
    });

    it('still accepts samples with timestamps in the dropped range, and the next run trims them from the catch-all', async () => {
      const maintainer = new PartitionMaintainer(db, 5, () => now);
      const writer = new SampleWriter(db, maintainer);
      const late = [sample('dev-late', 'temp', now - 9 * DAY_MS), sample('dev-late', 'temp', Date.UTC(2018, 3, 3)), sample('dev-late', 'temp', now - HOUR)];
      expect(await writer.write(late, seen(late))).toHaveLength(3);
      const where = await testDb.query<{ name: string; n: number }>(
        `SELECT tableoid::regclass::text AS name, count(*)::int AS n FROM samples WHERE device_id = 'dev-late' GROUP BY 1 ORDER BY 1`,
      );
      expect(where).toEqual([
        { name: CATCHALL_NAME, n: 2 },
        { name: dailyPartitionName(floorDay(now - HOUR)), n: 1 },
      ]);
      logs.length = 0;
      const steps = mirrored(await maintainer.run());
      expect(steps.map((s) => s.kind)).toEqual(['trim-catchall']);
      expect(logs).toEqual([
        expect.objectContaining({ msg: 'catch-all partition trimmed (retention)', partition: CATCHALL_NAME, deleted: 2 }),
        expect.objectContaining({ msg: 'catch-all partition trimmed (retention)', partition: 'minute_aggregates_catchall', deleted: 2 }),
      ]);
      expect(await minuteTierDrift(testDb)).toEqual([]);
      expect(await testDb.query(`SELECT count(*)::int AS n FROM samples WHERE device_id = 'dev-late'`)).toEqual([{ n: 1 }]);
    });

    it('two maintainers on separate connections at once, with writes going on, never fail and leave one sound layout', async () => {
      const other = await startService(testDb.url);
      try {
        const writer = new SampleWriter(db, new PartitionMaintainer(db, 5, () => now));
        for (let day = 1; day <= 4; day++) {
          const clock = () => now + day * DAY_MS;
          const a = new PartitionMaintainer(db, 5, clock);
          const b = new PartitionMaintainer(other, 5, clock);
          const batch = [sample('dev-c', 'temp', now + day * HOUR), sample('dev-c', 'temp', now - 8 * DAY_MS + day)];
          const [stepsA, stepsB] = await Promise.all([a.run(), b.run(), writer.write(batch, seen(batch))]);
          // The advisory lock serialises them: whatever one did, the other found done.
          const both = mirrored([...stepsA, ...stepsB]);
          expect(both.filter((s) => s.kind === 'drop').map((s) => s.name)).toEqual([dailyPartitionName(today + (day - 6) * DAY_MS)]);
          // Days exist up to today + 10 already; the horizon (clock day + 7) passes it on the fourth day.
          expect(both.filter((s) => s.kind === 'create').map((s) => s.name)).toEqual(day + 7 > 10 ? [dailyPartitionName(today + (day + 7) * DAY_MS)] : []);
          const parts = await partitionLayout(testDb);
          expect(layoutProblems(parts)).toEqual([]);
          expect(parts[0].to).toBe(today + (day - 5) * DAY_MS);
        }
      } finally {
        await other.onApplicationShutdown();
      }
    });
  });

  describe('the writer when a partition is missing', () => {
    let testDb: TestDatabase;
    let db: DatabaseService;
    const now = Date.now();

    beforeAll(async () => {
      testDb = await createTestDatabase('partition_writer');
      db = await startService(testDb.url);
    });

    afterAll(async () => {
      await db?.onApplicationShutdown();
      await testDb?.drop();
    });

    it('creates the missing partition and retries the batch once', async () => {
      const todays = dailyPartitionName(floorDay(now));
      await testDb.query(`DROP TABLE ${todays}`);
      const writer = new SampleWriter(db, new PartitionMaintainer(db, undefined));
      const batch = [sample('dev-w', 'temp', now), sample('dev-w', 'hum', now)];
      expect(await writer.write(batch, seen(batch))).toEqual(batch);
      expect(logs).toEqual([expect.objectContaining({ msg: 'partition created', partition: todays })]);
      expect(await rowsPerPartition(testDb)).toEqual({ [todays]: 2 });
      expect(layoutProblems(await partitionLayout(testDb))).toEqual([]);
    });

    it('creates partitions beyond the week ahead when a batch needs them', async () => {
      const writer = new SampleWriter(db, new PartitionMaintainer(db, undefined));
      const batch = [sample('dev-w', 'temp', now + 10 * DAY_MS)];
      expect(await writer.write(batch, seen(batch))).toEqual(batch);
      expect(mirroredLogs(logs).map((l) => l.partition)).toEqual([8, 9, 10].map((d) => dailyPartitionName(floorDay(now) + d * DAY_MS)));
      expect(layoutProblems(await partitionLayout(testDb))).toEqual([]);
    });

    it('still fails, after one retry, for a row no partition may hold', async () => {
      const writer = new SampleWriter(db, new PartitionMaintainer(db, undefined));
      const batch = [sample('dev-w', 'temp', now + 400 * DAY_MS)]; // past the 35-day cap on partitions made on demand
      await expect(writer.write(batch, seen(batch))).rejects.toMatchObject({ code: '23514' });
    });
  });

  describe('the service', () => {
    let testDb: TestDatabase;

    beforeAll(async () => {
      testDb = await createTestDatabase('partition_service');
    });

    afterAll(async () => {
      await testDb?.drop();
    });

    it('applies RETENTION_DAYS at start-up, before ingestion, and logs each partition it drops', async () => {
      const now = Date.now();
      const today = floorDay(now);
      const db = await startService(testDb.url);
      try {
        await testDb.query(`ALTER TABLE samples DETACH PARTITION ${CATCHALL_NAME}`);
        await testDb.query(
          `ALTER TABLE samples ATTACH PARTITION ${CATCHALL_NAME} FOR VALUES FROM (MINVALUE) TO ('${new Date(today - 6 * DAY_MS).toISOString()}')`,
        );
        const writer = new SampleWriter(db, new PartitionMaintainer(db, undefined));
        const batch = [sample('dev-s', 'temp', now - 5 * DAY_MS), sample('dev-s', 'temp', now)];
        await writer.write(batch, seen(batch));
      } finally {
        await db.onApplicationShutdown();
      }

      jest.restoreAllMocks(); // the app's own log lines are what this test reads
      const app = await startTestApp({ DATABASE_URL: testDb.url, RETENTION_DAYS: '2', MQTT_URL: undefined, MQTT_PORT: '0' });
      try {
        const dropped = app.logs.filter((line) => line.includes('partition dropped (retention)')).map((line) => JSON.parse(line).partition);
        // Days ending at or before now - 2 days: today-6 … today-3 (the last ends at today-2 ≤ now-2d).
        expect(dropped).toEqual([6, 5, 4, 3].map((d) => dailyPartitionName(today - d * DAY_MS)));
        const lastPartitionLine = app.logs.findLastIndex((line) => line.includes('"context":"Partitions"'));
        const brokerListening = app.logs.findIndex((line) => line.includes('embedded MQTT broker listening'));
        expect(brokerListening).toBeGreaterThan(lastPartitionLine);
        expect((await partitionLayout(testDb))[0].to).toBe(today - 2 * DAY_MS);
        expect(await testDb.query(`SELECT ts FROM samples WHERE device_id = 'dev-s'`)).toEqual([{ ts: new Date(now) }]);
      } finally {
        await app.close();
      }
    });
  });
});
