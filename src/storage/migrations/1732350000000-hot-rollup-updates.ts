import type { MigrationInterface, QueryRunner } from 'typeorm';

// Every batch updates thousands of rollup rows in place (and touches device
// rows). With full pages each update lands on another page and adds an entry
// to every index; free space on the page lets PostgreSQL do heap-only (HOT)
// updates instead, which skip the indexes and are pruned without VACUUM.
export class HotRollupUpdates1732350000000 implements MigrationInterface {
  name = 'HotRollupUpdates1732350000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE hourly_aggregates SET (fillfactor = 50)`);
    await q.query(`ALTER TABLE devices SET (fillfactor = 50)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE hourly_aggregates RESET (fillfactor)`);
    await q.query(`ALTER TABLE devices RESET (fillfactor)`);
  }
}
