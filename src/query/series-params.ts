// Parameters of the time-series routes (GET /api/devices/:id/series,
// GET /api/series, GET /api/devices/:id/samples.csv) and the pure bucket
// arithmetic the service needs before it asks the database: the interval's
// shape, and bounds on how many buckets a range holds in any zone.
import { BadRequestException } from '@nestjs/common';
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from '../ingestion/payload-parser';
import { METRIC_PATTERN, parse, timeParam } from './query-params';

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** At most this many buckets (empty ones included) in one answer. */
export const MAX_BUCKETS = 10_000;
/** A metric list or device list longer than this is refused (a URL that long is a mistake). */
const MAX_LIST = 1000;

/** Minute and hour buckets are counted on the zone's clock from this local origin (a midnight). */
export const BIN_ORIGIN = '2000-01-01 00:00:00';

export type SeriesInterval =
  /** N minutes or N hours on the zone's clock: `stride` is a whole number of minutes. */
  | { text: string; kind: 'bin'; strideMinutes: number }
  /** A calendar unit in the zone: local midnight, Monday, the 1st. */
  | { text: string; kind: 'day' | 'week' | 'month' };

export const AGGREGATES = ['count', 'sum', 'min', 'max', 'avg', 'first', 'last'] as const;
export type Aggregate = (typeof AGGREGATES)[number];
export const FLEET_AGGREGATES: readonly Aggregate[] = ['count', 'sum', 'min', 'max', 'avg'];
const DEFAULT_AGGREGATES: Aggregate[] = ['count', 'min', 'max', 'avg'];

export interface SeriesQuery {
  metrics: string[] | undefined;
  from: Date;
  to: Date;
  interval: SeriesInterval;
  tz: string;
  aggs: Aggregate[];
  fill: 'none' | 'null';
}

export interface FleetSeriesQuery extends SeriesQuery {
  devices: string[] | undefined;
}

const INTERVAL_MSG = 'interval must be Nm (N from 1 to 1440), Nh (N from 1 to 168), 1d, 1w or 1mo';

export function parseInterval(text: string): SeriesInterval | null {
  const m = /^([1-9]\d{0,3})(m|h)$/.exec(text);
  if (m) {
    const n = Number(m[1]);
    if (m[2] === 'm' && n <= 1440) return { text, kind: 'bin', strideMinutes: n };
    if (m[2] === 'h' && n <= 168) return { text, kind: 'bin', strideMinutes: n * 60 };
    return null;
  }
  if (text === '1d') return { text, kind: 'day' };
  if (text === '1w') return { text, kind: 'week' };
  if (text === '1mo') return { text, kind: 'month' };
  return null;
}

/**
 * True for an IANA zone name the runtime knows. Offsets ('+05:30') and POSIX
 * strings ('UTC+3', which PostgreSQL reads with the opposite sign) are refused.
 */
export function isTimeZone(tz: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+\-]*(\/[A-Za-z0-9_+\-]+)*$/.test(tz) || tz.length > 64) return false;
  if (/^(UTC|GMT)[+-]/i.test(tz)) return false;
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The shortest and longest a bucket can be on the zone's clock (not in elapsed time). */
function localLength(interval: SeriesInterval): { min: number; max: number } {
  switch (interval.kind) {
    case 'bin':
      return { min: interval.strideMinutes * MINUTE_MS, max: interval.strideMinutes * MINUTE_MS };
    case 'day':
      return { min: DAY_MS, max: DAY_MS };
    case 'week':
      return { min: 7 * DAY_MS, max: 7 * DAY_MS };
    case 'month':
      return { min: 28 * DAY_MS, max: 31 * DAY_MS };
  }
}

/**
 * Bounds on the number of bucket starts in [from, to) in any zone. The
 * zone's clock over that range spans the elapsed time give or take the
 * widest swing of UTC offsets (-12 h to +14 h, DST included), so the exact
 * count (from the database) is only needed when the bounds straddle the limit.
 */
export function bucketCountBounds(interval: SeriesInterval, fromMs: number, toMs: number): { min: number; max: number } {
  const SWING = 26 * HOUR_MS;
  const span = toMs - fromMs;
  const { min, max } = localLength(interval);
  return {
    min: Math.max(0, Math.floor((span - SWING) / max) - 1),
    max: Math.floor((span + SWING) / min) + 1,
  };
}

/** How far past its start a bucket's samples can reach, DST included (bounds the rows a query reads). */
export function longestBucketMs(interval: SeriesInterval): number {
  return localLength(interval).max + 3 * HOUR_MS;
}

export function tooManyBuckets(interval: SeriesInterval): BadRequestException {
  return new BadRequestException(`more than ${MAX_BUCKETS} buckets of ${interval.text} between from and to; narrow the range or widen the interval`);
}

/** A comma-separated list parameter; absent or empty = undefined. */
const listParam = (name: string, pattern: RegExp, patternText: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const items = [...new Set(v.split(','))];
      if (items.length > MAX_LIST || items.some((i) => !pattern.test(i))) {
        ctx.addIssue({ code: 'custom', message: `${name} must be a comma-separated list of at most ${MAX_LIST} names matching ${patternText}` });
        return z.NEVER;
      }
      return items;
    });

const intervalParam = z
  .string()
  .optional()
  .transform((v, ctx) => {
    const interval = parseInterval(v === undefined || v === '' ? '1h' : v);
    if (!interval) {
      ctx.addIssue({ code: 'custom', message: INTERVAL_MSG });
      return z.NEVER;
    }
    return interval;
  });

const tzParam = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === '') return 'UTC';
    if (!isTimeZone(v)) {
      ctx.addIssue({ code: 'custom', message: `tz must be an IANA time zone such as Europe/Paris; unknown: ${v.slice(0, 64)}` });
      return z.NEVER;
    }
    return v;
  });

const aggParam = (allowed: readonly Aggregate[]) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return DEFAULT_AGGREGATES;
      const items = [...new Set(v.split(','))];
      if (items.some((a) => !allowed.includes(a as Aggregate))) {
        ctx.addIssue({ code: 'custom', message: `agg must be a comma-separated list of ${allowed.join(', ')}` });
        return z.NEVER;
      }
      // Always in one order, so equal queries share a cache entry.
      return allowed.filter((a) => items.includes(a));
    });

const fillParam = z
  .string()
  .optional()
  .transform((v, ctx) => {
    if (v === undefined || v === '' || v === 'none') return 'none' as const;
    if (v === 'null') return 'null' as const;
    ctx.addIssue({ code: 'custom', message: 'fill must be none or null' });
    return z.NEVER;
  });

const seriesShape = (allowed: readonly Aggregate[]) => ({
  metric: listParam('metric', METRIC_PATTERN, '[A-Za-z0-9_.-]{1,64}'),
  from: timeParam('from'),
  to: timeParam('to'),
  interval: intervalParam,
  tz: tzParam,
  agg: aggParam(allowed),
  fill: fillParam,
});

function toSeriesQuery(q: {
  metric: string[] | undefined;
  from: Date | undefined;
  to: Date | undefined;
  interval: SeriesInterval;
  tz: string;
  agg: Aggregate[];
  fill: 'none' | 'null';
}): SeriesQuery {
  const to = q.to ?? new Date();
  const from = q.from ?? new Date(to.getTime() - DAY_MS);
  if (from.getTime() >= to.getTime()) throw new BadRequestException('from must be before to');
  const bounds = bucketCountBounds(q.interval, from.getTime(), to.getTime());
  if (bounds.min > MAX_BUCKETS) throw tooManyBuckets(q.interval);
  return { metrics: q.metric?.sort(), from, to, interval: q.interval, tz: q.tz, aggs: q.agg, fill: q.fill };
}

export function parseSeriesQuery(query: unknown): SeriesQuery {
  return toSeriesQuery(parse(z.object(seriesShape(AGGREGATES)), query));
}

export function parseFleetSeriesQuery(query: unknown): FleetSeriesQuery {
  const q = parse(
    z.object({ ...seriesShape(FLEET_AGGREGATES), devices: listParam('devices', DEVICE_ID_PATTERN, '[A-Za-z0-9_.:-]{1,64}') }),
    query,
  );
  return { ...toSeriesQuery(q), devices: q.devices?.sort() };
}

export function parseCsvQuery(query: unknown): { metric: string | undefined; from: Date; to: Date } {
  const q = parse(
    z.object({
      metric: z
        .string()
        .optional()
        .refine((v) => v === undefined || v === '' || METRIC_PATTERN.test(v), 'metric must match [A-Za-z0-9_.-]{1,64}'),
      from: timeParam('from'),
      to: timeParam('to'),
    }),
    query,
  );
  // Default: everything stored (the parser accepts 2000-01-01 to now + 1 day).
  const from = q.from ?? new Date(Date.UTC(2000, 0, 1));
  const to = q.to ?? new Date(Date.now() + DAY_MS + 1);
  if (from.getTime() >= to.getTime()) throw new BadRequestException('from must be before to');
  return { metric: q.metric || undefined, from, to };
}
