// The hourly tier is no longer upserted by every batch: a batch only updates
// the minute tier, and a minute row is folded into hourly_aggregates once, when
// no batch has touched it for a while (hourly-folder.ts). A device reporting
// every second used to rewrite its hourly row in every batch; now it does so
// once a minute.
//
// `folded` says whether a minute row is already counted in hourly_aggregates;
// rows that exist now are (the batch statement of the previous release kept
// both tiers), hence the column's default true at creation, false afterwards.
// `touched` is when a batch last wrote the row (wall clock), the folder's
// "quiet for a while". The partial index holds the unfolded rows only: the
// last minutes' worth, which readers of the hourly tier add in.
//
// `hourly_parts` is what every reader of the hourly tier uses: the folded
// hours plus the unfolded minutes, each labelled with its UTC hour. Several
// rows may share a (device, metric, hour); readers add them up (count and
// sum add, min and max combine), which the hourly queries do anyway.
import type { MigrationInterface, QueryRunner } from 'typeorm';

export class HourlyFold1732800000000 implements MigrationInterface {
  name = 'HourlyFold1732800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE minute_aggregates ADD COLUMN folded boolean NOT NULL DEFAULT true`);
    await q.query(`ALTER TABLE minute_aggregates ALTER COLUMN folded SET DEFAULT false`);
    await q.query(`ALTER TABLE minute_aggregates ADD COLUMN touched timestamptz NOT NULL DEFAULT now()`);
    await q.query(`CREATE INDEX minute_aggregates_unfolded ON minute_aggregates (device_id, metric, bucket) WHERE NOT folded`);
    await q.query(`
      CREATE VIEW hourly_parts AS
        SELECT device_id, metric, bucket, count::bigint AS count, sum, min, max FROM hourly_aggregates
        UNION ALL
        SELECT device_id, metric, date_trunc('hour', bucket, 'UTC'), count::bigint, sum, min, max FROM minute_aggregates WHERE NOT folded`);
  }

  async down(q: QueryRunner): Promise<void> {
    // Fold everything first, so hourly_aggregates alone is complete again for the previous release.
    await q.query(`
      WITH f AS (UPDATE minute_aggregates SET folded = true WHERE NOT folded RETURNING device_id, metric, bucket, count, sum, min, max)
      INSERT INTO hourly_aggregates AS h (device_id, metric, bucket, count, sum, min, max)
      SELECT device_id, metric, date_trunc('hour', bucket, 'UTC'), sum(count), sum(sum), min(min), max(max) FROM f GROUP BY 1, 2, 3
      ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        count = h.count + EXCLUDED.count, sum = h.sum + EXCLUDED.sum, min = LEAST(h.min, EXCLUDED.min), max = GREATEST(h.max, EXCLUDED.max)`);
    await q.query(`DROP VIEW hourly_parts`);
    await q.query(`DROP INDEX minute_aggregates_unfolded`);
    await q.query(`ALTER TABLE minute_aggregates DROP COLUMN touched, DROP COLUMN folded`);
  }
}
