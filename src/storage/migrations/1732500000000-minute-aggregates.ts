// The minute rollup tier: one row per (device, metric, UTC minute) with
// count/sum/min/max and the first and last value with their times, kept by the
// batch write (sample-writer.ts) from the rows it really inserted. Partitioned
// by UTC day exactly like samples (a catch-all below, then one partition per
// day) so RETENTION_DAYS drops a day of both tables together and each day's
// key index stays small. fillfactor 50 as for hourly_aggregates: the rows of
// the current minute are updated in place by every batch (HOT updates).
//
// Existing installs are backfilled from samples in bounded chunks: the hourly
// rollup (which always equals samples) tells how many samples each device has
// per UTC day, and each statement aggregates consecutive device-days worth at
// most CHUNK_SAMPLES samples. A statement reads samples under ACCESS SHARE
// only, which blocks no insert: ingestion by instances still running the
// previous release goes on, and instances of this release start ingesting
// once the migration has committed. (Samples that an instance of the previous
// release writes while or after this runs are not in the minute tier: stop
// those instances first, as for any schema upgrade.)
// No COPY anywhere: the same path runs on embedded PostgreSQL (PGlite).
import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Upper bound on the samples one backfill statement aggregates (one device-day may exceed it alone). */
const CHUNK_SAMPLES = 200_000;
const DAY_MS = 24 * 3600_000;

const literal = (ms: number) => `'${new Date(ms).toISOString()}'`;
const dayName = (ms: number) => `minute_aggregates_p${new Date(ms).toISOString().slice(0, 10).replace(/-/g, '')}`;

export class MinuteAggregates1732500000000 implements MigrationInterface {
  name = 'MinuteAggregates1732500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE minute_aggregates (
        device_id text COLLATE "C" NOT NULL,
        metric text COLLATE "C" NOT NULL,
        bucket timestamptz NOT NULL,
        count integer NOT NULL,
        sum double precision NOT NULL,
        min double precision NOT NULL,
        max double precision NOT NULL,
        first_ts timestamptz NOT NULL,
        first double precision NOT NULL,
        last_ts timestamptz NOT NULL,
        last double precision NOT NULL,
        PRIMARY KEY (device_id, metric, bucket)
      ) PARTITION BY RANGE (bucket)`);
    // The same ranges as the partitions of samples, so both tables are kept and dropped day by day together.
    const parts = (await q.query(`
      SELECT (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
             (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'samples'::regclass`)) as Array<{ from: Date | null; to: Date | null }>;
    for (const p of parts) {
      if (p.from === null) {
        await q.query(
          `CREATE TABLE minute_aggregates_catchall PARTITION OF minute_aggregates FOR VALUES FROM (MINVALUE) TO (${literal((p.to as Date).getTime())}) WITH (fillfactor = 50)`,
        );
      } else if (p.to !== null && p.to.getTime() - p.from.getTime() === DAY_MS) {
        await q.query(
          `CREATE TABLE ${dayName(p.from.getTime())} PARTITION OF minute_aggregates FOR VALUES FROM (${literal(p.from.getTime())}) TO (${literal(p.to.getTime())}) WITH (fillfactor = 50)`,
        );
      }
    }
    for (const chunk of await planBackfill(q)) {
      await q.query(
        `INSERT INTO minute_aggregates (device_id, metric, bucket, count, sum, min, max, first_ts, first, last_ts, last)
         SELECT s.device_id, s.metric, date_trunc('minute', s.ts, 'UTC'), count(*), sum(s.value), min(s.value), max(s.value),
           min(s.ts), (array_agg(s.value ORDER BY s.ts))[1], max(s.ts), (array_agg(s.value ORDER BY s.ts DESC))[1]
         FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[]) AS c(device_id, lo, hi)
         JOIN samples s ON s.device_id = c.device_id AND s.ts >= c.lo AND s.ts < c.hi
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
        [chunk.devices, chunk.from, chunk.to],
      );
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE minute_aggregates`);
  }
}

/** Device-day ranges grouped into statements of at most CHUNK_SAMPLES samples (by the hourly rollup's counts). */
async function planBackfill(q: QueryRunner): Promise<BackfillChunk[]> {
  const days = (await q.query(`
    SELECT device_id AS "deviceId", date_trunc('day', bucket, 'UTC') AS day, sum(count)::float8 AS samples
    FROM hourly_aggregates GROUP BY 1, 2 ORDER BY 1, 2`)) as DeviceDay[];
  return chunkDeviceDays(days, CHUNK_SAMPLES);
}

export interface DeviceDay {
  deviceId: string;
  /** A UTC midnight. */
  day: Date;
  samples: number;
}

export interface BackfillChunk {
  devices: string[];
  from: string[];
  to: string[];
}

/**
 * Groups device-days (ordered by device, then day) into chunks of at most
 * `limit` samples; a device-day larger than the limit is a chunk of its own.
 * Consecutive days of one device in a chunk become one range.
 */
export function chunkDeviceDays(days: readonly DeviceDay[], limit: number): BackfillChunk[] {
  const chunks: BackfillChunk[] = [];
  let chunk: BackfillChunk = { devices: [], from: [], to: [] };
  let size = 0;
  for (const { deviceId, day, samples } of days) {
    if (size > 0 && size + samples > limit) {
      chunks.push(chunk);
      chunk = { devices: [], from: [], to: [] };
      size = 0;
    }
    const from = day.toISOString();
    const to = new Date(day.getTime() + DAY_MS).toISOString();
    const last = chunk.devices.length - 1;
    if (last >= 0 && chunk.devices[last] === deviceId && chunk.to[last] === from) {
      chunk.to[last] = to;
    } else {
      chunk.devices.push(deviceId);
      chunk.from.push(from);
      chunk.to.push(to);
    }
    size += samples;
  }
  if (chunk.devices.length > 0) chunks.push(chunk);
  return chunks;
}
