// The vocabulary of time series: bucket intervals, aggregates and the pure
// bucket arithmetic the service needs before it asks the database (the
// interval's shape, and bounds on how many buckets a range holds in any zone).

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** At most this many buckets (empty ones included) in one answer. */
export const MAX_BUCKETS = 10_000;
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
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(tz) || tz.length > 64) return false;
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
