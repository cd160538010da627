// Turns `samples` into a table range-partitioned by ts, one partition per UTC
// day, so retention can drop whole days and each day's primary-key index
// stays small. The existing table is renamed and attached as the low
// catch-all partition (MINVALUE up to the day after its newest row, or today
// when it is empty): an upgrade keeps every row where it is, with no copy.
// ATTACH reads the old table once to check the bound; nothing is rewritten.
// The same path turns a fresh, empty table into the same shape.
//
// The partitions from the catch-all's bound through today + 7 days are
// created here too, so the schema accepts writes as soon as it is migrated
// (an operator may run `migration:run` ahead of a rollout while older
// instances are still writing); PartitionMaintainer keeps them ahead after that.
// Interval arithmetic is in hours, not days, so a non-UTC session time zone
// cannot shift a day boundary.
import type { MigrationInterface, QueryRunner } from 'typeorm';

const DAY_MS = 24 * 3600_000;
/** Daily partitions created ahead by this migration: today and the 7 days after it. */
const DAYS_AHEAD = 8;

const dayName = (ms: number) => `samples_p${new Date(ms).toISOString().slice(0, 10).replace(/-/g, '')}`;
/** The samples table as the initial migration made it (migrations keep their own copy: later ones must not change it). */
const SAMPLE_COLUMNS = `device_id text COLLATE "C" NOT NULL, metric text COLLATE "C" NOT NULL, ts timestamptz NOT NULL,
  value double precision NOT NULL, PRIMARY KEY (device_id, metric, ts)`;
const literal = (ms: number) => `'${new Date(ms).toISOString()}'`;

export class PartitionSamples1732400000000 implements MigrationInterface {
  name = 'PartitionSamples1732400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`LOCK TABLE samples IN ACCESS EXCLUSIVE MODE`);
    const [{ bound, today }] = (await q.query(`
      SELECT GREATEST(date_trunc('day', max(ts), 'UTC') + interval '24 hours', date_trunc('day', now(), 'UTC')) AS bound,
             date_trunc('day', now(), 'UTC') AS today
      FROM samples`)) as Array<{ bound: Date; today: Date }>;
    await q.query(`ALTER TABLE samples RENAME TO samples_catchall`);
    await q.query(`ALTER INDEX samples_pkey RENAME TO samples_catchall_pkey`);
    await q.query(`
      CREATE TABLE samples (${SAMPLE_COLUMNS}) PARTITION BY RANGE (ts)`);
    await q.query(`ALTER TABLE samples ATTACH PARTITION samples_catchall FOR VALUES FROM (MINVALUE) TO (${literal(bound.getTime())})`);
    for (let day = bound.getTime(); day < today.getTime() + DAYS_AHEAD * DAY_MS; day += DAY_MS) {
      await q.query(`CREATE TABLE ${dayName(day)} PARTITION OF samples FOR VALUES FROM (${literal(day)}) TO (${literal(day + DAY_MS)})`);
    }
  }

  /** Back to one plain table; unlike `up`, this copies every row. */
  async down(q: QueryRunner): Promise<void> {
    await q.query(`LOCK TABLE samples IN ACCESS EXCLUSIVE MODE`);
    await q.query(`ALTER TABLE samples RENAME TO samples_partitioned`);
    await q.query(`ALTER INDEX samples_pkey RENAME TO samples_partitioned_pkey`);
    await q.query(`
      CREATE TABLE samples (${SAMPLE_COLUMNS})`);
    await q.query(`INSERT INTO samples SELECT device_id, metric, ts, value FROM samples_partitioned ORDER BY 1, 2, 3`);
    await q.query(`DROP TABLE samples_partitioned`);
  }
}
