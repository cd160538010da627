// Read-side SQL of the time-series routes. Buckets are computed in SQL, in the
// requested zone: N-minute / N-hour buckets bin the zone's wall clock
// (date_bin over `ts AT TIME ZONE tz` from local 2000-01-01 00:00, converted
// back), days, weeks (Monday) and months use date_trunc(unit, ts, tz), which
// follows DST (23 and 25 hour days).
//
// Every figure is computed from the coarsest stored tier that gives the same
// answer as a GROUP BY over samples: a tier row (an hour or a minute of
// samples) may be folded into a bucket only when all its samples fall into
// that same bucket, which holds when the bucket boundaries are whole units of
// the tier on the zone's clock and the zone's UTC offset is a whole number of
// that unit throughout the range (checked in the database, day by day). The
// hourly tier has no first/last, so those need the minute tier; raw samples
// are read only when neither tier lines up (a zone with an offset in seconds).
// Sums of sums differ from the sum of the values only by float rounding.
import { Injectable } from '@nestjs/common';
import { DatabaseService } from './database.service';
import { DEVICE_METRICS_CTE } from './telemetry-queries';
import { type Aggregate, BIN_ORIGIN, type SeriesInterval, longestBucketMs } from '../telemetry/series-interval';

export type Tier = 'hour' | 'minute' | 'raw';

const DAY_MS = 24 * 3600_000;

/** Figures of one bucket of one metric, as the database returns them. */
export interface BucketRow {
  metric: string;
  bucket: Date;
  count: number;
  sum: number;
  min: number;
  max: number;
  first?: number;
  last?: number;
}

export interface SeriesFrame {
  /** Bucket starts in [from, to) as epoch ms, ascending (only when asked for). */
  labels: number[] | undefined;
  /** How many bucket starts lie in [from, to) (only when asked for). */
  count: number | undefined;
  /** Whether the zone's offset is a whole number of hours / minutes over the range read. */
  wholeHours: boolean;
  wholeMinutes: boolean;
  /** The zone's UTC offset in seconds when it is the same all over the range read (no DST change), else undefined. */
  offsetS: number | undefined;
}

export interface SeriesSelection {
  /** Device ids to read; undefined = every device. */
  devices: string[] | undefined;
  /** Metric names; undefined = every metric. */
  metrics: string[] | undefined;
  from: Date;
  to: Date;
  interval: SeriesInterval;
  tz: string;
  aggs: readonly Aggregate[];
}

/** Zones whose offset is always 0: no need to ask the database about them. */
const UTC_ZONES = new Set(['UTC', 'Etc/UTC', 'Etc/UCT', 'Etc/GMT', 'GMT', 'Etc/Universal', 'Universal', 'Etc/Zulu', 'Zulu', 'UCT', 'Etc/GMT0', 'GMT0']);

/**
 * SQL for the start of the bucket holding timestamptz `x`; the zone is parameter $1.
 *
 * N-minute / N-hour: `b` is the local bin (date_bin over the wall clock). The
 * bucket starts when the clock entered `b`: `x` minus the local time elapsed
 * since `b`, as long as the offset did not change in between (checked by
 * reading the clock at that instant). Otherwise a DST change lies inside the
 * bucket and `b` converted back is its start (for a clock that jumped
 * forward into the bin, the instant of the jump). Unlike converting `b` back
 * alone, this keeps the repeated hour of the night clocks go back as two
 * buckets, each starting no later than its samples.
 */
export function bucketSql(interval: SeriesInterval, x: string, offsetS?: number): string {
  if (interval.kind !== 'bin') return `date_trunc('${interval.kind}', ${x}, $1)`;
  // One offset over the whole range (UTC, or no DST change): plain bins from local midnight, far cheaper per row.
  if (offsetS !== undefined) {
    return `date_bin(interval '${interval.strideMinutes} minutes', ${x}, timestamptz '${BIN_ORIGIN}+00' - interval '${offsetS} seconds')`;
  }
  const b = `date_bin(interval '${interval.strideMinutes} minutes', (${x}) AT TIME ZONE $1, timestamp '${BIN_ORIGIN}')`;
  const entered = `((${x}) - ((${x}) AT TIME ZONE $1 - ${b}))`;
  return `(CASE WHEN ${entered} AT TIME ZONE $1 = ${b} THEN ${entered} ELSE ${b} AT TIME ZONE $1 END)`;
}

/** Which tier can serve the interval exactly, given what the zone's offsets are over the range. */
export function chooseTier(interval: SeriesInterval, aggs: readonly Aggregate[], frame: Pick<SeriesFrame, 'wholeHours' | 'wholeMinutes'>): Tier {
  const hourAligned = interval.kind !== 'bin' || interval.strideMinutes % 60 === 0;
  const needsFirstLast = aggs.includes('first') || aggs.includes('last');
  if (hourAligned && frame.wholeHours && !needsFirstLast) return 'hour';
  if (frame.wholeMinutes) return 'minute';
  return 'raw';
}

@Injectable()
export class SeriesQueries {
  constructor(private readonly db: DatabaseService) {}

  /**
   * The bucket starts of the range (enumerated on the zone's clock and kept
   * when they are the start of their own bucket, which drops the phantoms a
   * DST gap makes) and the zone's offsets over the rows a query would read.
   */
  async frame(interval: SeriesInterval, tz: string, from: Date, to: Date, want: { labels: boolean; count: boolean }): Promise<SeriesFrame> {
    const utc = UTC_ZONES.has(tz);
    if (utc && !want.labels && !want.count) return { labels: undefined, count: undefined, wholeHours: true, wholeMinutes: true, offsetS: 0 };
    const step = interval.kind === 'bin' ? `interval '${interval.strideMinutes} minutes'` : `interval '1 ${interval.kind}'`;
    const localStart =
      interval.kind === 'bin'
        ? `date_bin(${step}, ($2::timestamptz - interval '1 day') AT TIME ZONE $1, timestamp '${BIN_ORIGIN}')`
        : `date_trunc('${interval.kind}', ($2::timestamptz - interval '1 day') AT TIME ZONE $1)`;
    // A local time the clock showed twice (the night it goes back 30 min, 1 h or 2 h) converts to
    // its later instant; the earlier one is a candidate too. Only real bucket starts survive the filter.
    const shifts =
      interval.kind === 'bin' ? `(VALUES (interval '0'), (interval '30 minutes'), (interval '1 hour'), (interval '2 hours'))` : `(VALUES (interval '0'))`;
    const labels = `
      SELECT DISTINCT lab FROM (
        SELECT (l AT TIME ZONE $1) - s.shift AS lab
        FROM generate_series(${localStart}, ($3::timestamptz + interval '1 day') AT TIME ZONE $1, ${step}) l, ${shifts} AS s(shift)
      ) g WHERE lab >= $2 AND lab < $3 AND ${bucketSql(interval, 'lab')} = lab`;
    // Offsets are sampled once a day over the rows read; no zone has kept an offset for less than a day.
    const [lo, hi] = this.readRange(interval, from, to).map((d) => d.getTime());
    const checkFrom = new Date(Math.max(lo, Date.UTC(2000, 0, 1)));
    const checkTo = new Date(Math.max(checkFrom.getTime(), Math.min(hi, Date.now() + 2 * DAY_MS)));
    const [row] = await this.db.query<{
      labels: number[] | null;
      n: number | null;
      hours: boolean | null;
      minutes: boolean | null;
      lowest: number | null;
      highest: number | null;
    }>(
      `SELECT
        ${want.labels ? `(SELECT array_agg(date_part('epoch', lab) * 1000 ORDER BY lab) FROM (${labels}) x)` : 'NULL::float8[]'} AS labels,
        ${want.count ? `(SELECT count(*)::int FROM (${labels}) x)` : 'NULL::int'} AS n,
        bool_and(o % 3600 = 0) AS hours, bool_and(o % 60 = 0) AS minutes, min(o) AS lowest, max(o) AS highest
      FROM (
        SELECT extract(epoch FROM (d AT TIME ZONE $1) - (d AT TIME ZONE 'UTC'))::int AS o
        FROM (SELECT generate_series($4::timestamptz, $5::timestamptz, interval '1 day') AS d UNION ALL SELECT $5::timestamptz) s
        -- (Names $2 and $3 even when no labels are asked for: pg sends parameters untyped.)
        WHERE NOT ${utc} AND $2::timestamptz < $3::timestamptz
      ) offsets`,
      [tz, from.toISOString(), to.toISOString(), checkFrom.toISOString(), checkTo.toISOString()],
    );
    return {
      labels: want.labels ? (row.labels ?? []) : undefined,
      count: want.count ? (row.n ?? 0) : undefined,
      wholeHours: row.hours ?? true,
      wholeMinutes: row.minutes ?? true,
      offsetS: utc ? 0 : row.lowest !== null && row.lowest === row.highest ? row.lowest : undefined,
    };
  }

  /** Figures per metric and bucket for buckets starting in [from, to), from the given tier. */
  /** `offsetS`: the zone's offset when constant over the range (SeriesFrame.offsetS), for the cheaper bucket expression. */
  async buckets(sel: SeriesSelection, tier: Tier, offsetS?: number): Promise<BucketRow[]> {
    const [lo, hi] = this.readRange(sel.interval, sel.from, sel.to);
    const params: unknown[] = [sel.tz, sel.from.toISOString(), sel.to.toISOString(), lo.toISOString(), hi.toISOString()];
    const where: string[] = [];
    if (sel.devices) {
      params.push(sel.devices);
      where.push(sel.devices.length === 1 ? `device_id = ($${params.length}::text[])[1]` : `device_id = ANY($${params.length}::text[])`);
    }
    if (sel.metrics) {
      params.push(sel.metrics);
      where.push(`metric = ANY($${params.length}::text[])`);
    }
    const firstLast = sel.aggs.includes('first') || sel.aggs.includes('last');
    let source: string;
    switch (tier) {
      case 'hour':
        source = `SELECT metric, bucket AS t, count, sum, min, max FROM hourly_parts WHERE ${[...where, 'bucket >= $4', 'bucket < $5'].join(' AND ')}`;
        break;
      case 'minute':
        source = `SELECT metric, bucket AS t, count, sum, min, max${firstLast ? ', first_ts, first, last_ts, last' : ''}
          FROM minute_aggregates WHERE ${[...where, 'bucket >= $4', 'bucket < $5'].join(' AND ')}`;
        break;
      case 'raw':
        source = `SELECT metric, ts AS t, 1 AS count, value AS sum, value AS min, value AS max${firstLast ? ', ts AS first_ts, value AS first, ts AS last_ts, value AS last' : ''}
          FROM samples WHERE ${[...where, 'ts >= $4', 'ts < $5'].join(' AND ')}`;
        break;
    }
    // first/last: the value paired with the earliest / latest time, without a sort per bucket.
    const rows = await this.db.query<BucketRow>(
      `SELECT metric, bucket, sum(count)::float8 AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max
        ${firstLast ? `, (min(ARRAY[date_part('epoch', first_ts), first]))[2] AS first, (max(ARRAY[date_part('epoch', last_ts), last]))[2] AS last` : ''}
      FROM (SELECT r.*, ${bucketSql(sel.interval, 'r.t', offsetS)} AS bucket FROM (${source}) r) x
      WHERE bucket >= $2 AND bucket < $3 AND $1::text IS NOT NULL -- the zone is unused with a fixed offset; pg needs every parameter typed
      GROUP BY metric, bucket ORDER BY metric, bucket`,
      params,
    );
    return rows;
  }

  /**
   * Rows that can hold samples of a bucket starting in [from, to): a day's
   * margin on each side covers what DST does to bucket starts.
   */
  private readRange(interval: SeriesInterval, from: Date, to: Date): [Date, Date] {
    return [new Date(from.getTime() - DAY_MS), new Date(to.getTime() + longestBucketMs(interval) + DAY_MS)];
  }

  /** Device ids among `ids` that do not exist. */
  async missingDevices(ids: readonly string[]): Promise<string[]> {
    const rows = await this.db.query<{ id: string }>(
      `SELECT i.id FROM unnest($1::text[]) AS i(id) WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = i.id) ORDER BY 1`,
      [ids],
    );
    return rows.map((r) => r.id);
  }

  async allDevices(): Promise<string[]> {
    return (await this.db.query<{ id: string }>(`SELECT id FROM devices ORDER BY id`)).map((r) => r.id);
  }

  /** Every metric a device has stored. */
  async deviceMetrics(deviceId: string): Promise<string[]> {
    const rows = await this.db.query<{ metric: string }>(`WITH ${DEVICE_METRICS_CTE} SELECT metric FROM metrics`, [deviceId]);
    return rows.map((r) => r.metric);
  }
}
