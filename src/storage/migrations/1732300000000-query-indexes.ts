import type { MigrationInterface, QueryRunner } from 'typeorm';

// The fleet-wide dashboard reads hourly rollups by time across all devices;
// per-device reads use the primary keys.
export class QueryIndexes1732300000000 implements MigrationInterface {
  name = 'QueryIndexes1732300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX hourly_aggregates_bucket_idx ON hourly_aggregates (bucket)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX hourly_aggregates_bucket_idx`);
  }
}
