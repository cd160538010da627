// The one write path for samples, used on real and embedded PostgreSQL alike.
// A batch is ONE statement (so one transaction): samples are inserted
// idempotently, and only the rows that were really inserted feed the minute
// rollup, so redeliveries and duplicates never double-count. The hourly tier
// is filled from quiet minute rows by HourlyFolder, not here; only samples of
// a minute that was already folded go to hourly_aggregates directly. Whole columns go
// as arrays (4+3 bind parameters whatever the batch size: no 65,535 limit);
// the four sample columns travel as comma-joined text, because device ids and
// metric names cannot contain ',' (payload-parser patterns) and a native
// join is far cheaper than pg's per-element array literal escaping.
// Rows are sorted by key in every table so concurrent writers (several
// instances) take row locks in the same order and cannot deadlock each other.
import { Injectable } from '@nestjs/common';
import type { DeviceSeen, Sample } from '../telemetry/sample';
import { DatabaseService } from './database.service';
import { PartitionMaintainer } from './partition-maintainer';

const WRITE_BATCH_SQL = `
WITH input AS (
  -- Timestamps travel as epoch milliseconds (no Date/ISO string per sample in Node).
  SELECT device_id, metric, to_timestamp(ts_ms / 1000.0) AS ts, value, ord
  FROM unnest(
    string_to_array($1::text, ','), string_to_array($2::text, ','),
    string_to_array($3::text, ',')::float8[], string_to_array($4::text, ',')::float8[]
  ) WITH ORDINALITY AS t(device_id, metric, ts_ms, value, ord)
),
inserted AS (
  INSERT INTO samples (device_id, metric, ts, value)
  -- ord breaks ties: of a point sent twice in one batch the first one sent is
  -- stored, the one the writer reports as new below.
  SELECT device_id, metric, ts, value FROM input ORDER BY device_id, metric, ts, ord
  ON CONFLICT DO NOTHING
  RETURNING device_id, metric, ts, value
),
grouped AS (
  -- first/last travel as {ts, value} pairs: min()/max() of a float8[] pair
  -- picks the value at the earliest/latest time without a sort per group.
  -- Epoch seconds as float8 keep ms (and µs) exactly and order like ts.
  SELECT device_id, metric, date_trunc('minute', ts, 'UTC') AS bucket, count(*) AS n, sum(value) AS total,
    min(value) AS lo, max(value) AS hi, min(ARRAY[date_part('epoch', ts), value]) AS f, max(ARRAY[date_part('epoch', ts), value]) AS l
  FROM inserted GROUP BY 1, 2, 3
),
minutes AS (
  INSERT INTO minute_aggregates AS m (device_id, metric, bucket, count, sum, min, max, first_ts, first, last_ts, last, touched)
  SELECT device_id, metric, bucket, n, total, lo, hi, to_timestamp(f[1]), f[2], to_timestamp(l[1]), l[2], now()
  FROM grouped ORDER BY 1, 2, 3
  ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
    count = m.count + EXCLUDED.count,
    sum = m.sum + EXCLUDED.sum,
    min = LEAST(m.min, EXCLUDED.min),
    max = GREATEST(m.max, EXCLUDED.max),
    -- (device, metric, ts) is unique, so first_ts/last_ts never tie.
    first_ts = LEAST(m.first_ts, EXCLUDED.first_ts),
    first = CASE WHEN EXCLUDED.first_ts < m.first_ts THEN EXCLUDED.first ELSE m.first END,
    last_ts = GREATEST(m.last_ts, EXCLUDED.last_ts),
    last = CASE WHEN EXCLUDED.last_ts > m.last_ts THEN EXCLUDED.last ELSE m.last END,
    touched = EXCLUDED.touched
  -- folded as it is after this update: a minute the folder already moved into
  -- hourly_aggregates (it waits for this row lock, or this waited for its) is
  -- not folded again, so this batch's part must go there directly.
  RETURNING device_id, metric, bucket, folded
),
late AS (
  INSERT INTO hourly_aggregates AS h (device_id, metric, bucket, count, sum, min, max)
  SELECT g.device_id, g.metric, date_trunc('hour', g.bucket, 'UTC'), sum(g.n), sum(g.total), min(g.lo), max(g.hi)
  FROM minutes f JOIN grouped g USING (device_id, metric, bucket) WHERE f.folded
  GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
  ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
    count = h.count + EXCLUDED.count,
    sum = h.sum + EXCLUDED.sum,
    min = LEAST(h.min, EXCLUDED.min),
    max = GREATEST(h.max, EXCLUDED.max)
),
seen AS (
  INSERT INTO devices AS d (id, first_seen, last_seen)
  SELECT id, to_timestamp(first_ms / 1000.0), to_timestamp(last_ms / 1000.0)
  FROM unnest($5::text[], $6::float8[], $7::float8[]) AS s(id, first_ms, last_ms) ORDER BY 1
  ON CONFLICT (id) DO UPDATE SET
    first_seen = LEAST(d.first_seen, EXCLUDED.first_seen),
    last_seen = GREATEST(d.last_seen, EXCLUDED.last_seen)
  -- A device that reports every second would otherwise rewrite its row in
  -- every batch; last_seen is kept to the second, which is all a user reads.
  WHERE EXCLUDED.last_seen > d.last_seen + interval '1 second' OR EXCLUDED.first_seen < d.first_seen
)
SELECT n.inserted,
  -- Which input rows were new, computed only in the rare batch that held duplicates.
  CASE WHEN n.inserted < $8::int THEN
    (SELECT coalesce(array_agg(i.ord::int ORDER BY i.ord), '{}') FROM input i JOIN inserted s USING (device_id, metric, ts))
  END AS new_rows
FROM (SELECT count(*)::int AS inserted FROM inserted) n`;

const RETRYABLE = new Set(['40P01', '40001']); // deadlock_detected, serialization_failure
/** "no partition of relation … found for row" (the only CHECK-class error this statement can raise). */
const NO_PARTITION = '23514';

@Injectable()
export class SampleWriter {
  constructor(
    private readonly db: DatabaseService,
    private readonly partitions: PartitionMaintainer,
  ) {}

  /** Commits the batch; resolves with the samples that were new (not already stored). */
  async write(samples: readonly Sample[], devices: readonly DeviceSeen[]): Promise<readonly Sample[]> {
    const n = samples.length;
    const deviceIds = new Array<string>(n);
    const metrics = new Array<string>(n);
    const times = new Array<number>(n);
    const values = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const s = samples[i];
      deviceIds[i] = s.deviceId;
      metrics[i] = s.metric;
      times[i] = s.ts;
      values[i] = s.value;
    }
    const params = [
      deviceIds.join(','),
      metrics.join(','),
      times.join(','),
      values.join(','),
      devices.map((d) => d.deviceId),
      devices.map((d) => d.firstSeenMs),
      devices.map((d) => d.lastSeenMs),
      n,
    ];
    let partitionsEnsured = false;
    for (let attempt = 1; ; attempt++) {
      try {
        const [row] = await this.db.query<{ new_rows: number[] | null }>(WRITE_BATCH_SQL, params);
        if (row.new_rows === null) return samples;
        // Ordinals are 1-based and ascending; a point sent twice in one batch maps to one stored row.
        const seen = new Set<string>();
        const stored: Sample[] = [];
        for (const ord of row.new_rows) {
          const sample = samples[ord - 1];
          const key = `${sample.deviceId}\u0000${sample.metric}\u0000${sample.ts}`;
          if (!seen.has(key)) {
            seen.add(key);
            stored.push(sample);
          }
        }
        return stored;
      } catch (error) {
        const code = (error as { code?: string }).code;
        if (attempt < 5 && code !== undefined && RETRYABLE.has(code)) continue;
        // Safety net: partitions are kept a week ahead, but a write must not
        // depend on that; create what this batch needs and try once more.
        if (code === NO_PARTITION && !partitionsEnsured) {
          partitionsEnsured = true;
          await this.partitions.ensure(newest(times));
          continue;
        }
        throw error;
      }
    }
  }
}

function newest(times: readonly number[]): number {
  let max = -Infinity;
  for (const t of times) if (t > max) max = t;
  return max;
}
