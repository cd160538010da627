// Parameters of the time-series routes (GET /api/devices/:id/series,
// GET /api/series, GET /api/devices/:id/samples.csv); the interval and bucket
// arithmetic itself is in src/telemetry/series-interval.ts.
import { BadRequestException } from '@nestjs/common';
import { z } from 'zod';
import { DEVICE_ID_PATTERN } from '../telemetry/telemetry-rules';
import { METRIC_NAME_PATTERN as METRIC_PATTERN } from '../telemetry/telemetry-rules';
import { parse, timeParam } from './query-params';
import {
  type Aggregate,
  AGGREGATES,
  bucketCountBounds,
  FLEET_AGGREGATES,
  isTimeZone,
  MAX_BUCKETS,
  parseInterval,
  type SeriesInterval,
} from '../telemetry/series-interval';

const DAY_MS = 24 * 3_600_000;

export { AGGREGATES, bucketCountBounds, FLEET_AGGREGATES, isTimeZone, MAX_BUCKETS, parseInterval, type Aggregate, type SeriesInterval };

/** A metric list or device list longer than this is refused (a URL that long is a mistake). */
const MAX_LIST = 1000;

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
  const q = parse(z.object({ ...seriesShape(FLEET_AGGREGATES), devices: listParam('devices', DEVICE_ID_PATTERN, '[A-Za-z0-9_.:-]{1,64}') }), query);
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
