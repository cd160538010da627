// Validation of route parameters and query strings. A failure becomes a 400
// whose message names the parameter and what is expected.
import { BadRequestException } from '@nestjs/common';
import { z } from 'zod';
import { DEVICE_ID_PATTERN, DEVICE_ID_RULE, METRIC_NAME_PATTERN, METRIC_NAME_RULE } from '../telemetry/telemetry-rules';

export const CACHE_CLEAR_PATTERN = /^telemetry:[\x21-\x7e]{1,200}$/;
/** Bounds and defaults of the integer query parameters (also published in the OpenAPI document). */
export const INT_PARAMS = {
  devicesLimit: { min: 1, max: 1000, default: 100 },
  devicesOffset: { min: 0, max: 1_000_000_000, default: 0 },
  samplesLimit: { min: 1, max: 10_000, default: 1000 },
} as const;
const DAY_MS = 24 * 3600 * 1000;

const intParam = (name: string, { min, max, default: fallback }: { min: number; max: number; default: number }) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return fallback;
      const n = Number(v);
      if (!/^\d+$/.test(v) || n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an integer from ${min} to ${max}` });
        return z.NEVER;
      }
      return n;
    });

export const timeParam = (name: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      // ISO-8601 date or date-time; Date.parse alone would take "1" or "May 5".
      const ms = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) ? Date.parse(v) : NaN;
      if (Number.isNaN(ms) || !isCalendarDate(v.slice(0, 10))) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an ISO-8601 date-time, e.g. 2026-11-21T10:00:00Z` });
        return z.NEVER;
      }
      return new Date(ms);
    });

const metricParam = (required: boolean) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if ((v === undefined || v === '') && !required) return undefined;
      if (v === undefined || !METRIC_NAME_PATTERN.test(v)) {
        ctx.addIssue({ code: 'custom', message: required ? `metric is required and ${METRIC_NAME_RULE}` : `metric ${METRIC_NAME_RULE}` });
        return z.NEVER;
      }
      return v;
    });

/** Date.parse rolls 2026-02-30 over into March; a real calendar date survives the round trip. */
function isCalendarDate(ymd: string): boolean {
  const [y, m, d] = ymd.split('-').map(Number);
  const date = new Date(Date.UTC(y, m - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === m - 1 && date.getUTCDate() === d;
}

export function parse<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) throw new BadRequestException(result.error.issues.map((i) => i.message).join('; '));
  return result.data;
}

export function parseDeviceId(id: string): string {
  if (!DEVICE_ID_PATTERN.test(id)) throw new BadRequestException(`device id ${DEVICE_ID_RULE}`);
  return id;
}

export function parsePaging(query: unknown): { limit: number; offset: number } {
  return parse(z.object({ limit: intParam('limit', INT_PARAMS.devicesLimit), offset: intParam('offset', INT_PARAMS.devicesOffset) }), query);
}

function range(from: Date | undefined, to: Date | undefined, defaultSpanMs: number): { from: Date; to: Date } {
  const end = to ?? new Date();
  const start = from ?? new Date(end.getTime() - defaultSpanMs);
  if (start.getTime() >= end.getTime()) throw new BadRequestException('from must be before to');
  return { from: start, to: end };
}

const HOUR_MS = 3600 * 1000;

/**
 * Buckets are hours, so the range is widened to whole hours: [hour of from,
 * end of the hour of to). That answers the same buckets and gives a cache key
 * that stays the same for a whole hour instead of changing every millisecond.
 */
export function parseHourlyQuery(query: unknown): { metric: string; from: Date; to: Date } {
  const q = parse(z.object({ metric: metricParam(true), from: timeParam('from'), to: timeParam('to') }), query);
  const { from, to } = range(q.from, q.to, DAY_MS);
  return {
    metric: q.metric as string,
    from: new Date(Math.floor(from.getTime() / HOUR_MS) * HOUR_MS),
    to: new Date(Math.ceil(to.getTime() / HOUR_MS) * HOUR_MS),
  };
}

export function parseSamplesQuery(query: unknown): { metric: string | undefined; from: Date; to: Date; limit: number } {
  const q = parse(
    z.object({ metric: metricParam(false), from: timeParam('from'), to: timeParam('to'), limit: intParam('limit', INT_PARAMS.samplesLimit) }),
    query,
  );
  // Default: everything up to the newest accepted timestamp (now + 1 day).
  const to = q.to ?? new Date(Date.now() + DAY_MS + 1);
  const from = q.from ?? new Date(Date.UTC(2000, 0, 1));
  return { metric: q.metric, limit: q.limit, ...range(from, to, DAY_MS) };
}

export function parseClearBody(body: unknown): { pattern: string | undefined } {
  const q = parse(
    z.object({
      pattern: z.string().regex(CACHE_CLEAR_PATTERN, 'pattern must start with telemetry: and be at most 200 printable characters').optional(),
    }),
    body ?? {},
  );
  return { pattern: q.pattern };
}
