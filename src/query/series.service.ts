// Answers of the time-series routes (docs/api.md Time series): bucket figures in the
// columnar shape, one device's answers cached once their range is closed,
// and the CSV export of raw samples streamed through a server-side cursor.
import { BadRequestException, Injectable, NotFoundException } from '@nestjs/common';
import { Readable } from 'node:stream';
import { cacheKeys } from '../redis/redis-names';
import { CacheService } from '../cache/cache.service';
import { DatabaseService } from '../storage/database.service';
import { type Aggregate, type FleetSeriesQuery, MAX_BUCKETS, type SeriesQuery, bucketCountBounds, tooManyBuckets } from './series-params';
import { type BucketRow, SeriesQueries, type SeriesSelection, chooseTier } from '../storage/series-queries';
import { TelemetryQueries } from '../storage/telemetry-queries';

/** One metric's buckets, column by column: `t` (ISO starts) and one array per requested aggregate. */
export type SeriesColumns = { t: string[] } & Partial<Record<Aggregate, Array<number | null>>>;

export interface SeriesAnswer {
  interval: string;
  tz: string;
  from: string;
  to: string;
  series: Record<string, SeriesColumns>;
}
export interface DeviceSeriesAnswer extends SeriesAnswer {
  deviceId: string;
}
export interface FleetSeriesAnswer extends SeriesAnswer {
  devices: string[];
}

/** Rows per FETCH of the CSV cursor: about 100 KB of text. */
const CSV_FETCH_ROWS = 2000;
/**
 * CSV exports running at once per instance; more wait for a slot. Each holds
 * a pool connection for as long as its client takes to read, and the pool
 * (10 connections, 8 embedded) also carries ingestion.
 */
const MAX_CONCURRENT_EXPORTS = 2;
const MINUTE_MS = 60_000;
/** PostgreSQL's "invalid_parameter_value", raised for a zone its tz database lacks. */
const INVALID_PARAMETER = '22023';

@Injectable()
export class SeriesService {
  private exportsRunning = 0;
  private readonly exportQueue: Array<() => void> = [];

  constructor(
    private readonly queries: SeriesQueries,
    private readonly telemetry: TelemetryQueries,
    private readonly cache: CacheService,
    private readonly db: DatabaseService,
  ) {}

  async deviceSeries(deviceId: string, q: SeriesQuery): Promise<DeviceSeriesAnswer> {
    const load = async (): Promise<DeviceSeriesAnswer> => {
      const [device, allMetrics] = await Promise.all([this.telemetry.findDevice(deviceId), q.metrics ? undefined : this.queries.deviceMetrics(deviceId)]);
      if (!device) throw new NotFoundException(`device ${deviceId} not found`);
      const sel: SeriesSelection = { devices: [deviceId], metrics: q.metrics, from: q.from, to: q.to, interval: q.interval, tz: q.tz, aggs: q.aggs };
      const series = await this.compute(sel, q.fill, q.metrics ?? allMetrics ?? []);
      return { deviceId, ...this.echo(q), series };
    };
    // Only a range that ended before the current minute is cached: its
    // buckets no longer change except through late samples, which the TTL bounds.
    if (q.to.getTime() > Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS) return load();
    const key = cacheKeys.series(deviceId, seriesKeyPart(q));
    return (await this.cache.getOrLoad('hourly', key, this.cache.ttl.hourlyS, load)) as DeviceSeriesAnswer;
  }

  async fleetSeries(q: FleetSeriesQuery): Promise<FleetSeriesAnswer> {
    let devices = q.devices;
    if (devices) {
      const missing = await this.queries.missingDevices(devices);
      if (missing.length > 0) throw new NotFoundException(`device ${missing[0]} not found`);
    } else {
      devices = await this.queries.allDevices();
    }
    const sel: SeriesSelection = { devices: q.devices, metrics: q.metrics, from: q.from, to: q.to, interval: q.interval, tz: q.tz, aggs: q.aggs };
    const series = await this.compute(sel, q.fill, q.metrics);
    return { devices, ...this.echo(q), series };
  }

  /** `metrics`: the series to answer even when empty; undefined = those that have buckets. */
  private async compute(sel: SeriesSelection, fill: 'none' | 'null', metrics: readonly string[] | undefined): Promise<Record<string, SeriesColumns>> {
    const bounds = bucketCountBounds(sel.interval, sel.from.getTime(), sel.to.getTime());
    const mustCount = bounds.max > MAX_BUCKETS;
    const frame = await this.zoneAware(() =>
      this.queries.frame(sel.interval, sel.tz, sel.from, sel.to, { labels: fill === 'null', count: mustCount && fill !== 'null' }),
    );
    const n = frame.labels?.length ?? frame.count ?? 0;
    if (mustCount && n > MAX_BUCKETS) throw tooManyBuckets(sel.interval);
    const rows = await this.zoneAware(() => this.queries.buckets(sel, chooseTier(sel.interval, sel.aggs, frame), frame.offsetS));
    return columns(rows, sel.aggs, fill === 'null' ? (frame.labels ?? []) : undefined, metrics);
  }

  private echo(q: SeriesQuery) {
    return { interval: q.interval.text, tz: q.tz, from: q.from.toISOString(), to: q.to.toISOString() };
  }

  /** A zone the runtime knows but PostgreSQL's tz database lacks is still the caller's mistake. */
  private async zoneAware<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      const e = error as { code?: string; message?: string };
      if (e.code === INVALID_PARAMETER && /time zone/i.test(e.message ?? '')) {
        throw new BadRequestException('tz must be an IANA time zone such as Europe/Paris; unknown to the database');
      }
      throw error;
    }
  }

  /** Waits for one of the MAX_CONCURRENT_EXPORTS slots; resolves with its release. */
  private async exportSlot(): Promise<() => void> {
    if (this.exportsRunning >= MAX_CONCURRENT_EXPORTS) await new Promise<void>((resolve) => this.exportQueue.push(resolve));
    else this.exportsRunning++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      // Hand the slot straight to the next waiter, or free it.
      const next = this.exportQueue.shift();
      if (next) next();
      else this.exportsRunning--;
    };
  }

  /**
   * The device's samples as CSV (`ts,metric,value`, oldest first), fetched in
   * chunks through a cursor on a pool connection of its own. The stream pulls
   * the next chunk only when the reply has drained what it had, so memory
   * stays flat whatever the row count; ending or aborting the stream closes
   * the cursor and returns the connection.
   */
  async samplesCsv(deviceId: string, metric: string | undefined, from: Date, to: Date): Promise<Readable> {
    if (!(await this.telemetry.findDevice(deviceId))) throw new NotFoundException(`device ${deviceId} not found`);
    const db = this.db;
    const slot = () => this.exportSlot();
    async function* lines(): AsyncGenerator<string> {
      yield 'ts,metric,value\n';
      const release = await slot();
      let open = false;
      const runner = db.dataSource.createQueryRunner();
      try {
        await runner.connect();
        await runner.query('BEGIN READ ONLY');
        open = true;
        const params = [deviceId, from.toISOString(), to.toISOString()];
        if (metric) params.push(metric);
        // Text is built in PostgreSQL: float8 prints its shortest exact form, and Node does no per-row work.
        await runner.query(
          `DECLARE samples_csv NO SCROLL CURSOR FOR
           SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || ',' || metric || ',' || value::text AS line
           FROM samples WHERE device_id = $1 AND ts >= $2 AND ts < $3${metric ? ' AND metric = $4' : ''}
           ORDER BY ts, metric`,
          params,
        );
        for (;;) {
          const rows = (await runner.query(`FETCH ${CSV_FETCH_ROWS} FROM samples_csv`)) as Array<{ line: string }>;
          if (rows.length === 0) break;
          let chunk = '';
          for (const r of rows) chunk += r.line + '\n';
          yield chunk;
          if (rows.length < CSV_FETCH_ROWS) break;
        }
        await runner.query('COMMIT');
        open = false;
      } finally {
        if (open) await runner.query('ROLLBACK').catch(() => undefined);
        await runner.release();
        release();
      }
    }
    return Readable.from(lines(), { objectMode: false, highWaterMark: 256 * 1024 });
  }
}

/** Everything that makes two answers differ, in a fixed order. */
function seriesKeyPart(q: SeriesQuery): string {
  return [q.interval.text, q.tz, q.aggs.join(','), q.fill, q.metrics?.join(',') ?? '*', q.from.getTime(), q.to.getTime()].join(':');
}

/** Rows ordered by metric then bucket → one set of columns per metric; with `labels`, empty buckets as count 0 and nulls. */
export function columns(
  rows: readonly BucketRow[],
  aggs: readonly Aggregate[],
  labels: readonly number[] | undefined,
  metrics: readonly string[] | undefined,
): Record<string, SeriesColumns> {
  const byMetric = new Map<string, BucketRow[]>();
  for (const m of metrics ?? []) byMetric.set(m, []);
  for (const r of rows) {
    let list = byMetric.get(r.metric);
    if (!list) byMetric.set(r.metric, (list = []));
    list.push(r);
  }
  // Null prototype: a metric may be named like an Object.prototype member.
  const out: Record<string, SeriesColumns> = Object.create(null);
  for (const metric of [...byMetric.keys()].sort()) {
    const list = byMetric.get(metric) as BucketRow[];
    const cols: SeriesColumns = { t: [] };
    for (const a of aggs) cols[a] = [];
    const push = (ms: number, r: BucketRow | undefined) => {
      cols.t.push(new Date(ms).toISOString());
      for (const a of aggs) (cols[a] as Array<number | null>).push(r ? figure(r, a) : a === 'count' ? 0 : null);
    };
    if (!labels) {
      for (const r of list) push(r.bucket.getTime(), r);
    } else {
      // Merge the enumerated starts with the data's (the same set, unless DST made a start the enumeration missed).
      let i = 0;
      let j = 0;
      while (i < labels.length || j < list.length) {
        const a = i < labels.length ? labels[i] : Infinity;
        const b = j < list.length ? list[j].bucket.getTime() : Infinity;
        if (b <= a) {
          push(b, list[j++]);
          if (a === b) i++;
        } else {
          push(a, undefined);
          i++;
        }
      }
    }
    out[metric] = cols;
  }
  return out;
}

function figure(r: BucketRow, a: Aggregate): number | null {
  switch (a) {
    case 'count':
      return r.count;
    case 'sum':
      return r.sum;
    case 'min':
      return r.min;
    case 'max':
      return r.max;
    case 'avg':
      return r.sum / r.count;
    case 'first':
      return r.first ?? null;
    case 'last':
      return r.last ?? null;
  }
}
