// Parameters of the time-series routes: what each accepts, the exact 400
// message for what it rejects, the bucket-count bounds that decide when the
// database must count, and the columnar answer built from bucket rows.
import { BadRequestException } from '@nestjs/common';
import { MAX_BUCKETS, bucketCountBounds, isTimeZone, parseCsvQuery, parseFleetSeriesQuery, parseInterval, parseSeriesQuery } from './series-params';
import { chooseTier } from '../storage/series-queries';
import { columns } from './series.service';

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestException);
    const body = (error as BadRequestException).getResponse() as { message: unknown };
    expect(typeof body.message).toBe('string');
    return body.message as string;
  }
  throw new Error('expected a BadRequestException');
}

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const INTERVAL_MSG = 'interval must be Nm (N from 1 to 1440), Nh (N from 1 to 168), 1d, 1w or 1mo';
const T0 = '2026-11-01T00:00:00Z';

describe('parseInterval', () => {
  it.each([
    ['1m', { kind: 'bin', strideMinutes: 1 }],
    ['5m', { kind: 'bin', strideMinutes: 5 }],
    ['1440m', { kind: 'bin', strideMinutes: 1440 }],
    ['1h', { kind: 'bin', strideMinutes: 60 }],
    ['168h', { kind: 'bin', strideMinutes: 168 * 60 }],
    ['1d', { kind: 'day' }],
    ['1w', { kind: 'week' }],
    ['1mo', { kind: 'month' }],
  ])('accepts %s', (text, shape) => {
    expect(parseInterval(text)).toEqual({ text, ...shape });
  });

  it.each(['0m', '1441m', '0h', '169h', '01m', '2d', '2w', '2mo', '1y', '1M', 'm', '5', '1.5h', ' 1h', '1h ', '-1h', '1s', ''])('rejects %j', (text) => {
    expect(parseInterval(text)).toBeNull();
  });
});

describe('isTimeZone', () => {
  it.each(['UTC', 'Europe/Paris', 'Asia/Kolkata', 'America/Argentina/Buenos_Aires', 'Etc/GMT+5', 'America/Port-au-Prince'])('accepts %s', (tz) => {
    expect(isTimeZone(tz)).toBe(true);
  });

  it.each(['Mars/Olympus', 'Europe/Pariss', '+05:30', 'UTC+3', 'GMT-2', '', 'Europe/../Paris', "Europe/Paris'", 'a'.repeat(65)])('rejects %j', (tz) => {
    expect(isTimeZone(tz)).toBe(false);
  });
});

describe('parseSeriesQuery', () => {
  it('defaults: interval 1h, UTC, count,min,max,avg, fill none, every metric, the last 24 h', () => {
    const before = Date.now();
    const q = parseSeriesQuery({});
    expect(q.interval).toEqual({ text: '1h', kind: 'bin', strideMinutes: 60 });
    expect(q.tz).toBe('UTC');
    expect(q.aggs).toEqual(['count', 'min', 'max', 'avg']);
    expect(q.fill).toBe('none');
    expect(q.metrics).toBeUndefined();
    expect(q.to.getTime()).toBeGreaterThanOrEqual(before);
    expect(q.to.getTime() - q.from.getTime()).toBe(DAY);
  });

  it('takes metric lists (deduplicated, sorted), aggregates in a fixed order, fill=null and a zone', () => {
    const q = parseSeriesQuery({
      metric: 'temp,hum,temp',
      agg: 'last,count,first',
      fill: 'null',
      tz: 'Asia/Kolkata',
      from: T0,
      to: '2026-11-02T00:00:00Z',
      interval: '5m',
    });
    expect(q.metrics).toEqual(['hum', 'temp']);
    expect(q.aggs).toEqual(['count', 'first', 'last']);
    expect(q.fill).toBe('null');
    expect(q.tz).toBe('Asia/Kolkata');
    expect(q.interval).toEqual({ text: '5m', kind: 'bin', strideMinutes: 5 });
  });

  it.each([
    [{ interval: '0m' }, INTERVAL_MSG],
    [{ interval: '2d' }, INTERVAL_MSG],
    [{ tz: 'Mars/Olympus' }, 'tz must be an IANA time zone such as Europe/Paris; unknown: Mars/Olympus'],
    [{ agg: 'count,median' }, 'agg must be a comma-separated list of count, sum, min, max, avg, first, last'],
    [{ fill: 'zero' }, 'fill must be none or null'],
    [{ metric: 'temp,a b' }, 'metric must be a comma-separated list of at most 1000 names matching [A-Za-z0-9_.-]{1,64}'],
    [{ from: 'yesterday' }, 'from must be an ISO-8601 date-time, e.g. 2026-11-21T10:00:00Z'],
    [{ from: T0, to: T0 }, 'from must be before to'],
    [{ from: '2026-11-02T00:00:00Z', to: T0 }, 'from must be before to'],
  ])('rejects %j', (query, message) => {
    expect(rejection(() => parseSeriesQuery(query))).toBe(message);
  });

  it('reports several bad parameters in one message', () => {
    expect(rejection(() => parseSeriesQuery({ interval: 'x', fill: 'y' }))).toBe(`${INTERVAL_MSG}; fill must be none or null`);
  });

  it('refuses at once a range that certainly holds more than 10000 buckets, naming the limit', () => {
    expect(rejection(() => parseSeriesQuery({ interval: '1m', from: T0, to: '2026-11-11T00:00:00Z' }))).toBe(
      'more than 10000 buckets of 1m between from and to; narrow the range or widen the interval',
    );
  });

  it('leaves a range near the limit to the exact count', () => {
    // 10,000 one-minute buckets exactly: the bounds straddle the limit, so parsing accepts it.
    expect(() => parseSeriesQuery({ interval: '1m', from: T0, to: new Date(Date.parse(T0) + MAX_BUCKETS * MIN).toISOString() })).not.toThrow();
  });
});

describe('parseFleetSeriesQuery', () => {
  it('takes a device list and refuses first/last', () => {
    expect(parseFleetSeriesQuery({ devices: 'b,a', metric: 'temp' }).devices).toEqual(['a', 'b']);
    expect(parseFleetSeriesQuery({}).devices).toBeUndefined();
    expect(rejection(() => parseFleetSeriesQuery({ agg: 'first' }))).toBe('agg must be a comma-separated list of count, sum, min, max, avg');
    expect(rejection(() => parseFleetSeriesQuery({ devices: 'a,b c' }))).toBe(
      'devices must be a comma-separated list of at most 1000 names matching [A-Za-z0-9_.:-]{1,64}',
    );
  });
});

describe('parseCsvQuery', () => {
  it('defaults to everything stored and takes one metric', () => {
    const q = parseCsvQuery({ metric: 'temp' });
    expect(q.metric).toBe('temp');
    expect(q.from.toISOString()).toBe('2000-01-01T00:00:00.000Z');
    expect(q.to.getTime()).toBeGreaterThan(Date.now() + DAY - 5000);
    expect(rejection(() => parseCsvQuery({ metric: 'a,b' }))).toBe('metric must match [A-Za-z0-9_.-]{1,64}');
    expect(rejection(() => parseCsvQuery({ from: T0, to: T0 }))).toBe('from must be before to');
  });
});

describe('bucketCountBounds', () => {
  const count = (interval: string, from: string, to: string) => bucketCountBounds(parseInterval(interval)!, Date.parse(from), Date.parse(to));

  it('brackets the true count in every zone', () => {
    // Known true counts: UTC 24 hourly buckets in a day; 23/24/25 in zones with DST; 30 days in November; 12 months in a year.
    const cases: Array<[string, string, string, number[]]> = [
      ['1h', '2026-11-01T00:00:00Z', '2026-11-02T00:00:00Z', [23, 24, 25]],
      ['5m', '2026-11-01T00:00:00Z', '2026-11-01T01:00:00Z', [12]],
      ['1d', '2026-11-01T00:00:00Z', '2026-12-01T00:00:00Z', [29, 30, 31]],
      ['1w', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z', [52, 53]],
      ['1mo', '2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z', [11, 12, 13]],
    ];
    for (const [interval, from, to, truths] of cases) {
      const { min, max } = count(interval, from, to);
      for (const truth of truths) {
        expect(min).toBeLessThanOrEqual(truth);
        expect(max).toBeGreaterThanOrEqual(truth);
      }
    }
  });

  it('is tight enough that only ranges near the limit need the database', () => {
    expect(count('1m', '2026-11-01T00:00:00Z', '2026-11-05T00:00:00Z').max).toBeLessThanOrEqual(MAX_BUCKETS); // 5,760 buckets
    expect(count('1m', '2026-11-01T00:00:00Z', '2026-11-11T00:00:00Z').min).toBeGreaterThan(MAX_BUCKETS); // 14,400 buckets
    expect(count('1w', '2000-01-01T00:00:00Z', '2100-01-01T00:00:00Z').max).toBeLessThanOrEqual(MAX_BUCKETS); // 5,218 weeks
  });
});

describe('chooseTier', () => {
  const whole = { wholeHours: true, wholeMinutes: true };
  const halfHour = { wholeHours: false, wholeMinutes: true };
  const seconds = { wholeHours: false, wholeMinutes: false };

  it('uses the hourly tier for whole-hour buckets in whole-hour zones, unless first/last are asked for', () => {
    expect(chooseTier(parseInterval('1h')!, ['count'], whole)).toBe('hour');
    expect(chooseTier(parseInterval('120m')!, ['count'], whole)).toBe('hour');
    expect(chooseTier(parseInterval('1mo')!, ['avg'], whole)).toBe('hour');
    expect(chooseTier(parseInterval('1d')!, ['count', 'first'], whole)).toBe('minute');
    expect(chooseTier(parseInterval('1h')!, ['last'], whole)).toBe('minute');
  });

  it('uses the minute tier for minute buckets and half-hour zones, raw samples only for offsets in seconds', () => {
    expect(chooseTier(parseInterval('90m')!, ['count'], whole)).toBe('minute');
    expect(chooseTier(parseInterval('1h')!, ['count'], halfHour)).toBe('minute');
    expect(chooseTier(parseInterval('1d')!, ['count'], halfHour)).toBe('minute');
    expect(chooseTier(parseInterval('1d')!, ['count'], seconds)).toBe('raw');
  });
});

describe('columns', () => {
  const at = (iso: string) => new Date(iso);
  const rows = [
    { metric: 'temp', bucket: at('2026-11-01T01:00:00Z'), count: 2, sum: 3, min: 1, max: 2, first: 1, last: 2 },
    { metric: 'hum', bucket: at('2026-11-01T00:00:00Z'), count: 1, sum: 40, min: 40, max: 40, first: 40, last: 40 },
  ];

  it('answers one set of parallel arrays per metric, only for the requested aggregates', () => {
    expect(columns(rows, ['count', 'avg', 'last'], undefined, undefined)).toEqual({
      hum: { t: ['2026-11-01T00:00:00.000Z'], count: [1], avg: [40], last: [40] },
      temp: { t: ['2026-11-01T01:00:00.000Z'], count: [2], avg: [1.5], last: [2] },
    });
  });

  it('with labels lists empty buckets as count 0 and null elsewhere, and keeps requested metrics without data', () => {
    const labels = ['2026-11-01T00:00:00Z', '2026-11-01T01:00:00Z', '2026-11-01T02:00:00Z'].map(Date.parse);
    const out = columns(rows, ['count', 'min'], labels, ['temp', 'wind']);
    expect(out.temp).toEqual({
      t: ['2026-11-01T00:00:00.000Z', '2026-11-01T01:00:00.000Z', '2026-11-01T02:00:00.000Z'],
      count: [0, 2, 0],
      min: [null, 1, null],
    });
    expect(out.wind).toEqual({ t: out.temp.t, count: [0, 0, 0], min: [null, null, null] });
  });
});
