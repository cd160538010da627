// Fills the hourly tier from the minute tier. The batch statement keeps only
// minute rows; a minute row that no batch has touched for QUIET_MS is folded
// into hourly_aggregates once (marked folded, its figures added to its hour).
// A device reporting every second thus rewrites its hourly row once a minute
// instead of in every batch. Readers of the hourly tier read `hourly_parts`
// (the folded hours plus the unfolded minutes), so what they see is exact at
// any moment, folded or not; a sample for a minute that is already folded is
// added to the hourly row by the batch statement itself.
//
// One instance folds at a time: each run is one statement that takes a
// transaction advisory try-lock and folds nothing without it, so there is no
// owner to hand over and nothing to release when an instance dies. The
// statement has the database deadline of every query (a silent link cannot
// hang the folder), runs are chained, and a failure is logged once until a
// run succeeds again.
import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DatabaseService } from './database.service';

/** Arbitrary, fixed; distinct from the migration, partition and sweep locks. */
const FOLD_LOCK_KEY = 7_243_017;
const FOLD_EVERY_MS = 5000;
/** A minute row untouched this long is taken to be complete (later samples still count, see above). */
export const QUIET_MS = 10_000;
/** Rows per statement; a run repeats until fewer were due. */
const FOLD_CHUNK = 20_000;

/** Adds the rows of a `moved` CTE (folded minute rows) to their hours. */
const ADD_TO_HOURLY = `
  INSERT INTO hourly_aggregates AS h (device_id, metric, bucket, count, sum, min, max)
  SELECT device_id, metric, date_trunc('hour', bucket, 'UTC'), sum(count), sum(sum), min(min), max(max)
  FROM moved GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
    count = h.count + EXCLUDED.count,
    sum = h.sum + EXCLUDED.sum,
    min = LEAST(h.min, EXCLUDED.min),
    max = GREATEST(h.max, EXCLUDED.max)`;

// Locks are taken in key order and rows a batch holds are skipped (they are
// not quiet anyway), so the folder never waits for a writer. A row a writer
// updated after this statement's snapshot is re-read at its newest version
// by FOR UPDATE and UPDATE alike, so the figures moved are the committed ones.
const FOLD_SQL = `
WITH owner AS (SELECT pg_try_advisory_xact_lock($3) AS ok),
picked AS (
  SELECT device_id, metric, bucket FROM minute_aggregates
  WHERE NOT folded AND touched < now() - $1 * interval '1 millisecond' AND (SELECT ok FROM owner)
  ORDER BY device_id, metric, bucket LIMIT $2
  FOR UPDATE SKIP LOCKED
),
moved AS (
  UPDATE minute_aggregates m SET folded = true FROM picked p
  WHERE m.device_id = p.device_id AND m.metric = p.metric AND m.bucket = p.bucket
  RETURNING m.device_id, m.metric, m.bucket, m.count, m.sum, m.min, m.max
),
rolled AS (${ADD_TO_HOURLY}
)
SELECT count(*)::int AS n FROM moved`;

/**
 * Folds every unfolded minute before $1, quiet or not: retention runs it
 * before dropping minute partitions (under its table locks, so no batch
 * writes meanwhile), so the hourly tier, which is kept forever, loses nothing.
 */
export const FOLD_BEFORE_SQL = `
WITH moved AS (
  UPDATE minute_aggregates SET folded = true WHERE NOT folded AND bucket < $1
  RETURNING device_id, metric, bucket, count, sum, min, max
)
${ADD_TO_HOURLY}`;

@Injectable()
export class HourlyFolder implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('HourlyFolder');
  private timer: NodeJS.Timeout | undefined;
  private tail: Promise<unknown> = Promise.resolve();
  private failing = false;

  constructor(private readonly db: DatabaseService) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => void this.fold().catch(() => undefined), FOLD_EVERY_MS);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.tail.catch(() => undefined);
  }

  /** Folds every minute row quiet for `quietMs`; resolves with how many rows were folded. */
  fold(quietMs = QUIET_MS): Promise<number> {
    const next = this.tail.catch(() => undefined).then(() => this.foldAll(quietMs));
    this.tail = next;
    return next;
  }

  private async foldAll(quietMs: number): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        const [{ n }] = await this.db.query<{ n: number }>(FOLD_SQL, [quietMs, FOLD_CHUNK, FOLD_LOCK_KEY]);
        total += n;
        if (n < FOLD_CHUNK) break;
      }
      if (this.failing) this.logger.log('folding minutes into the hourly tier again');
      this.failing = false;
      return total;
    } catch (error) {
      if (!this.failing)
        this.logger.warn({ msg: 'folding minutes into the hourly tier failed; will retry', error: error instanceof Error ? error.message : String(error) });
      this.failing = true;
      throw error;
    }
  }
}
