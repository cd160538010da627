// Route parameter validation: what each validator accepts, and the exact 400
// message for what it rejects (docs/api.md HTTP API: invalid parameter → 400 with one
// string message).
import { BadRequestException } from '@nestjs/common';
import { parseClearBody, parseDeviceId, parseHourlyQuery, parsePaging, parseSamplesQuery } from './query-params';

/** Runs fn, expects a BadRequestException, returns its message (always one string). */
function rejection(fn: () => unknown): string {
  let accepted: unknown;
  try {
    accepted = fn();
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestException);
    const e = error as BadRequestException;
    expect(e.getStatus()).toBe(400);
    const body = e.getResponse() as { message: unknown };
    expect(typeof body.message).toBe('string');
    return body.message as string;
  }
  throw new Error(`expected a BadRequestException, but the input was accepted as ${JSON.stringify(accepted)}`);
}

const DAY_MS = 24 * 3600 * 1000;
const DEVICE_MSG = 'device id must match [A-Za-z0-9_.:-]{1,64}';
const ISO_MSG = (name: string) => `${name} must be an ISO-8601 date-time, e.g. 2026-11-21T10:00:00Z`;

describe('parseDeviceId', () => {
  it.each(['dev-1', 'a', 'A.b:c_d-9', 'x'.repeat(64), 'urn:dev:42'])('accepts %s', (id) => {
    expect(parseDeviceId(id)).toBe(id);
  });

  it.each(['', 'x'.repeat(65), 'dev 1', 'dev/1', 'dév', 'dev*', 'dev{1}', 'dev?', 'a\nb'])('rejects %j', (id) => {
    expect(rejection(() => parseDeviceId(id))).toBe(DEVICE_MSG);
  });
});

describe('parsePaging', () => {
  it('defaults to limit 100, offset 0 (also for empty strings and a missing query)', () => {
    expect(parsePaging({})).toEqual({ limit: 100, offset: 0 });
    expect(parsePaging({ limit: '', offset: '' })).toEqual({ limit: 100, offset: 0 });
    expect(parsePaging(undefined)).toEqual({ limit: 100, offset: 0 });
  });

  it('accepts the bounds', () => {
    expect(parsePaging({ limit: '1', offset: '0' })).toEqual({ limit: 1, offset: 0 });
    expect(parsePaging({ limit: '1000', offset: '1000000000' })).toEqual({ limit: 1000, offset: 1_000_000_000 });
    expect(parsePaging({ limit: '007' })).toEqual({ limit: 7, offset: 0 });
  });

  it.each(['0', '1001', '-1', '1.5', 'abc', '1e2', ' 5', '0x10', '99999999999999999999'])('rejects limit=%j', (limit) => {
    expect(rejection(() => parsePaging({ limit }))).toBe('limit must be an integer from 1 to 1000');
  });

  it.each(['-1', '1000000001', '2.0', 'x'])('rejects offset=%j', (offset) => {
    expect(rejection(() => parsePaging({ offset }))).toBe('offset must be an integer from 0 to 1000000000');
  });

  it('reports every bad parameter in one message', () => {
    expect(rejection(() => parsePaging({ limit: '0', offset: '-1' }))).toBe(
      'limit must be an integer from 1 to 1000; offset must be an integer from 0 to 1000000000',
    );
  });

  it('rejects a repeated parameter (?limit=1&limit=2 arrives as an array) with a 400', () => {
    expect(rejection(() => parsePaging({ limit: ['1', '2'] })).length).toBeGreaterThan(0);
  });

  it('ignores unknown parameters', () => {
    expect(parsePaging({ limit: '5', foo: 'bar' })).toEqual({ limit: 5, offset: 0 });
  });
});

describe('parseHourlyQuery', () => {
  it('requires metric', () => {
    expect(rejection(() => parseHourlyQuery({}))).toBe('metric is required and must match [A-Za-z0-9_.-]{1,64}');
    expect(rejection(() => parseHourlyQuery({ metric: '' }))).toBe('metric is required and must match [A-Za-z0-9_.-]{1,64}');
  });

  it.each(['a b', 'a:b', 'x'.repeat(65), 'temp*', 'é'])('rejects metric=%j', (metric) => {
    expect(rejection(() => parseHourlyQuery({ metric }))).toBe('metric is required and must match [A-Za-z0-9_.-]{1,64}');
  });

  it('defaults to the last 24 h, widened to whole hours (the end of the current hour)', () => {
    const HOUR = 3600_000;
    const before = Date.now();
    const q = parseHourlyQuery({ metric: 'temperature' });
    const after = Date.now();
    expect(q.metric).toBe('temperature');
    expect(q.to.getTime() % HOUR).toBe(0);
    expect(q.from.getTime() % HOUR).toBe(0);
    expect(q.to.getTime()).toBeGreaterThanOrEqual(before);
    expect(q.to.getTime()).toBeLessThanOrEqual(Math.ceil(after / HOUR) * HOUR);
    expect(q.to.getTime() - q.from.getTime()).toBeGreaterThanOrEqual(DAY_MS);
    expect(q.to.getTime() - q.from.getTime()).toBeLessThanOrEqual(DAY_MS + HOUR);
  });

  it('takes from alone as the start up to now, and to alone as the end of a 24 h span', () => {
    const q1 = parseHourlyQuery({ metric: 't', from: '2026-11-20T00:00:00Z' });
    expect(q1.from.toISOString()).toBe('2026-11-20T00:00:00.000Z');
    expect(q1.to.getTime()).toBe(Math.ceil(Date.now() / 3600_000) * 3600_000);
    const q2 = parseHourlyQuery({ metric: 't', to: '2026-11-20T00:00:00Z' });
    expect(q2.from.toISOString()).toBe('2026-11-19T00:00:00.000Z');
  });

  it.each([
    ['2026-11-21', '2026-11-21T00:00:00.000Z'],
    ['2026-11-21T10:00:00Z', '2026-11-21T10:00:00.000Z'],
    ['2026-11-21T10:00Z', '2026-11-21T10:00:00.000Z'],
    ['2026-11-21T10:00:00.250Z', '2026-11-21T10:00:00.000Z'], // widened to the start of its hour
    ['2026-11-21T12:00:00+02:00', '2026-11-21T10:00:00.000Z'],
    ['2026-11-21T05:00:00-0500', '2026-11-21T10:00:00.000Z'],
    ['2026-11-21 10:00:00Z', '2026-11-21T10:00:00.000Z'],
  ])('accepts from=%s (as the start of its hour)', (from, iso) => {
    expect(parseHourlyQuery({ metric: 't', from, to: '2030-01-01T00:00:00Z' }).from.toISOString()).toBe(iso);
  });

  it.each(['1', 'yesterday', 'May 5', '1732200000000', '2026-11-21T25:00:00Z', '2026-13-01', '21.11.2026', '2026-11-21T10', 'Sat, 21 Nov 2026 10:00:00 GMT'])(
    'rejects from=%j',
    (from) => {
      expect(rejection(() => parseHourlyQuery({ metric: 't', from }))).toBe(ISO_MSG('from'));
    },
  );

  it.each(['2026-02-30', '2026-04-31', '2026-02-29T10:00:00Z'])('rejects the impossible calendar date from=%s (not silently rolled over)', (from) => {
    expect(rejection(() => parseHourlyQuery({ metric: 't', from, to: '2030-01-01T00:00:00Z' }))).toBe(ISO_MSG('from'));
  });

  it('rejects to with its own name in the message', () => {
    expect(rejection(() => parseHourlyQuery({ metric: 't', to: 'tomorrow' }))).toBe(ISO_MSG('to'));
  });

  it('rejects from not before to', () => {
    expect(rejection(() => parseHourlyQuery({ metric: 't', from: '2026-11-21T10:00:00Z', to: '2026-11-21T10:00:00Z' }))).toBe('from must be before to');
    expect(rejection(() => parseHourlyQuery({ metric: 't', from: '2026-11-21T11:00:00Z', to: '2026-11-21T10:00:00Z' }))).toBe('from must be before to');
  });

  it('reports metric and time problems together', () => {
    expect(rejection(() => parseHourlyQuery({ from: 'x' }))).toBe(`metric is required and must match [A-Za-z0-9_.-]{1,64}; ${ISO_MSG('from')}`);
  });
});

describe('parseSamplesQuery', () => {
  it('defaults: no metric filter, limit 1000, from 2000-01-01, to beyond now + 1 day', () => {
    const q = parseSamplesQuery({});
    expect(q.metric).toBeUndefined();
    expect(q.limit).toBe(1000);
    expect(q.from.toISOString()).toBe('2000-01-01T00:00:00.000Z');
    expect(q.to.getTime()).toBeGreaterThan(Date.now() + DAY_MS - 5000);
  });

  it('accepts metric, limit bounds and a range', () => {
    expect(parseSamplesQuery({ metric: 'hum.idity_2-x' }).metric).toBe('hum.idity_2-x');
    expect(parseSamplesQuery({ metric: '' }).metric).toBeUndefined();
    expect(parseSamplesQuery({ limit: '1' }).limit).toBe(1);
    expect(parseSamplesQuery({ limit: '10000' }).limit).toBe(10000);
    const q = parseSamplesQuery({ from: '2026-11-20T00:00:00Z', to: '2026-11-21T00:00:00Z' });
    expect([q.from.toISOString(), q.to.toISOString()]).toEqual(['2026-11-20T00:00:00.000Z', '2026-11-21T00:00:00.000Z']);
  });

  it.each(['0', '10001', '-5', 'all', '10.5'])('rejects limit=%j', (limit) => {
    expect(rejection(() => parseSamplesQuery({ limit }))).toBe('limit must be an integer from 1 to 10000');
  });

  it.each(['a b', 'x'.repeat(65), 'temp/1'])('rejects metric=%j', (metric) => {
    expect(rejection(() => parseSamplesQuery({ metric }))).toBe('metric must match [A-Za-z0-9_.-]{1,64}');
  });

  it('rejects bad times and an empty range', () => {
    expect(rejection(() => parseSamplesQuery({ from: 'now' }))).toBe(ISO_MSG('from'));
    expect(rejection(() => parseSamplesQuery({ to: '2026/11/21' }))).toBe(ISO_MSG('to'));
    expect(rejection(() => parseSamplesQuery({ from: '2026-11-21T00:00:00Z', to: '2026-11-20T00:00:00Z' }))).toBe('from must be before to');
    // to before the default from (2000-01-01)
    expect(rejection(() => parseSamplesQuery({ to: '1999-12-31T00:00:00Z' }))).toBe('from must be before to');
  });

  it('reports several problems in one string', () => {
    expect(rejection(() => parseSamplesQuery({ metric: '?', limit: '0', to: 'x' }))).toBe(
      `metric must match [A-Za-z0-9_.-]{1,64}; ${ISO_MSG('to')}; limit must be an integer from 1 to 10000`,
    );
  });
});

describe('parseClearBody', () => {
  const MSG = 'pattern must start with telemetry: and be at most 200 printable characters';

  it('accepts no body, an empty body and a telemetry: pattern', () => {
    expect(parseClearBody(undefined)).toEqual({ pattern: undefined });
    expect(parseClearBody(null)).toEqual({ pattern: undefined });
    expect(parseClearBody({})).toEqual({ pattern: undefined });
    expect(parseClearBody({ pattern: 'telemetry:latest:*' })).toEqual({ pattern: 'telemetry:latest:*' });
    expect(parseClearBody({ pattern: 'telemetry:hourly:{dev-1}:*' })).toEqual({ pattern: 'telemetry:hourly:{dev-1}:*' });
    expect(parseClearBody({ pattern: `telemetry:${'x'.repeat(200)}` }).pattern).toHaveLength(210);
  });

  it.each([
    '*',
    'latest:*',
    'Telemetry:*',
    'telemetry:',
    'xtelemetry:*',
    'telemetry:a b',
    `telemetry:${'x'.repeat(201)}`,
    'telemetry:\u00e9',
    'telemetry:\n',
    '',
  ])('rejects pattern=%j', (pattern) => {
    expect(rejection(() => parseClearBody({ pattern }))).toBe(MSG);
  });

  it('rejects a non-string pattern and a non-object body with a 400', () => {
    expect(rejection(() => parseClearBody({ pattern: 5 })).length).toBeGreaterThan(0);
    expect(rejection(() => parseClearBody('telemetry:*')).length).toBeGreaterThan(0);
    expect(rejection(() => parseClearBody([])).length).toBeGreaterThan(0);
  });
});
