import type { MigrationInterface, QueryRunner } from 'typeorm';

// COLLATE "C" keys: byte-order comparison makes the (device_id, metric, ts)
// primary key measurably cheaper to maintain (STACK.md: ~10 % more rows/s).
// No foreign keys: the batch write inserts samples before it upserts devices
// in the same statement, and per-row RI checks would cost more than they guard.
export class InitialSchema1732200000000 implements MigrationInterface {
  name = 'InitialSchema1732200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE devices (
        id text COLLATE "C" PRIMARY KEY,
        first_seen timestamptz NOT NULL,
        last_seen timestamptz NOT NULL
      )`);
    await q.query(`CREATE INDEX devices_last_seen_idx ON devices (last_seen)`);
    await q.query(`
      CREATE TABLE samples (
        device_id text COLLATE "C" NOT NULL,
        metric text COLLATE "C" NOT NULL,
        ts timestamptz NOT NULL,
        value double precision NOT NULL,
        PRIMARY KEY (device_id, metric, ts)
      )`);
    await q.query(`
      CREATE TABLE hourly_aggregates (
        device_id text COLLATE "C" NOT NULL,
        metric text COLLATE "C" NOT NULL,
        bucket timestamptz NOT NULL,
        count bigint NOT NULL,
        sum double precision NOT NULL,
        min double precision NOT NULL,
        max double precision NOT NULL,
        PRIMARY KEY (device_id, metric, bucket)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE hourly_aggregates`);
    await q.query(`DROP TABLE samples`);
    await q.query(`DROP TABLE devices`);
  }
}
