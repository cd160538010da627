// The time-series behaviour, run against one backend (real PostgreSQL or
// embedded PGlite): samples arrive through the real batch write with
// duplicates, redelivered batches and late, out-of-order samples; every
// answer of the series routes is compared with a GROUP BY over samples
// written here independently of the service's SQL; the minute tier is
// checked against samples after random batches; the CSV export streams.
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { cacheKeys } from '../../src/redis/redis-names';
import { CacheService } from '../../src/cache/cache.service';
import type { Sample } from '../../src/telemetry/sample';
import { SeriesQueries, type Tier, chooseTier } from '../../src/storage/series-queries';
import { parseInterval } from '../../src/query/series-params';
import { DatabaseService } from '../../src/storage/database.service';
import { SampleWriter } from '../../src/storage/sample-writer';
import type { TestApp } from './test-app';

export const ADMIN_KEY = 'series-admin-key';

export interface SeriesBackend {
  app: TestApp;
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface SeriesSuiteOptions {
  /** Rows of the CSV export test. */
  csvRows: number;
  /** Whether to check that the export waits for a paused reader (needs enough rows to fill the socket buffers). */
  csvBackPressure: boolean;
  /** fast-check runs of the rollup property. */
  propertyRuns: number;
}

const MIN = 60_000;
const HOUR = 60 * MIN;

/** Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const seenOf = (batch: readonly Sample[]) =>
  [...new Set(batch.map((s) => s.deviceId))].map((deviceId) => ({ deviceId, firstSeenMs: Date.now(), lastSeenMs: Date.now() }));

/**
 * The bucket start of `ts`, written out here independently of the service:
 * days, weeks and months by date_trunc in the zone; N-minute / N-hour buckets
 * start when the zone's wall clock entered the bin of date_bin over local
 * time: `ts` minus the local time elapsed since the bin start, unless the
 * zone's offset differs at that instant (a DST change inside the bucket),
 * in which case the bin start read as local time.
 */
function referenceBucket(interval: string): string {
  const match = /^(\d+)(m|h)$/.exec(interval);
  if (!match) return `date_trunc('${{ '1d': 'day', '1w': 'week', '1mo': 'month' }[interval]}', ts, $1)`;
  const offset = (t: string) => `((${t}) AT TIME ZONE $1 - (${t}) AT TIME ZONE 'UTC')`;
  const bin = `date_bin(interval '${match[1]} ${match[2] === 'm' ? 'minutes' : 'hours'}', ts AT TIME ZONE $1, timestamp '2000-01-01')`;
  const entered = `(ts - (ts AT TIME ZONE $1 - ${bin}))`;
  return `(CASE WHEN ${offset(entered)} = ${offset('ts')} THEN ${entered} ELSE ${bin} AT TIME ZONE $1 END)`;
}

interface RefRow {
  metric: string;
  b: Date;
  count: number;
  sum: number;
  min: number;
  max: number;
  first: number;
  last: number;
}

interface Columns {
  t: string[];
  count?: number[];
  sum?: number[];
  min?: number[];
  max?: number[];
  avg?: number[];
  first?: number[];
  last?: number[];
}

const ALL_AGGS = 'count,sum,min,max,avg,first,last';

export function defineSeriesSuite(start: () => Promise<SeriesBackend>, stop: () => Promise<void>, options: SeriesSuiteOptions): void {
  let backend: SeriesBackend;
  let abs: (sql: string, params?: unknown[]) => Promise<RefRow[]>;

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${backend.app.baseUrl}${path}`, { headers });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  const write = (batch: Sample[]) => backend.app.get(SampleWriter).write(batch, seenOf(batch));

  beforeAll(async () => {
    backend = await start();
    abs = (sql, params) => backend.query<RefRow>(sql, params);
    await loadFixture();
  }, 300_000);

  afterAll(async () => {
    await stop();
  }, 120_000);

  /** Samples of dev-s and dev-t around both 2026 DST changes in Europe and over the year, with duplicates, redeliveries and late arrivals. */
  async function loadFixture(): Promise<void> {
    const random = rng(15);
    const samples: Sample[] = [];
    const add = (deviceId: string, fromMs: number, toMs: number, meanGapMs: number) => {
      for (let t = fromMs; t < toMs; t += Math.max(1, Math.round(meanGapMs * (0.2 + 1.6 * random())))) {
        for (const metric of ['temp', 'hum']) {
          if (random() < 0.15) continue; // metrics do not always come together
          samples.push({ deviceId, metric, ts: t + Math.floor(random() * 1000), value: Math.round((random() * 100 - 30) * 100) / 100 });
        }
      }
    };
    for (const deviceId of ['dev-s', 'dev-t']) {
      add(deviceId, Date.UTC(2026, 2, 27, 12), Date.UTC(2026, 2, 31, 12), 9 * MIN); // spring forward, Sunday 29 March
      add(deviceId, Date.UTC(2026, 9, 23, 12), Date.UTC(2026, 9, 27, 12), 9 * MIN); // fall back, Sunday 25 October
      add(deviceId, Date.UTC(2026, 0, 1), Date.UTC(2026, 11, 1), 13 * HOUR);
      add(deviceId, Date.UTC(2026, 5, 10), Date.UTC(2026, 5, 10, 2), 7_000); // dense: many samples per minute
    }
    // Shuffled, so batches carry late and out-of-order samples.
    for (let i = samples.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [samples[i], samples[j]] = [samples[j], samples[i]];
    }
    const batches: Sample[][] = [];
    for (let i = 0; i < samples.length; i += 700) batches.push(samples.slice(i, i + 700));
    for (const [n, batch] of batches.entries()) {
      // A point sent twice in one batch (another value the second time: the first is stored).
      const withDuplicates = [...batch, ...batch.slice(0, 20).map((s) => ({ ...s, value: s.value + 1000 }))];
      await write(withDuplicates);
      if (n % 3 === 0) await write(batch); // redelivered
    }
    // A redelivery of everything at the end changes nothing either.
    for (const batch of batches.slice(0, 5)) await write(batch);
  }

  async function reference(deviceIds: string[], interval: string, tz: string, from: string, to: string): Promise<RefRow[]> {
    return abs(
      `SELECT metric, b, count(*)::int AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
         (array_agg(value ORDER BY ts))[1] AS first, (array_agg(value ORDER BY ts DESC))[1] AS last
       FROM (SELECT metric, ts, value, ${referenceBucket(interval)} AS b FROM samples WHERE device_id = ANY($2)) s
       WHERE b >= $3 AND b < $4 GROUP BY metric, b ORDER BY metric, b`,
      [tz, deviceIds, from, to],
    );
  }

  function expectSame(series: Record<string, Columns>, ref: RefRow[], aggs: string[]): void {
    const metrics = [...new Set(ref.map((r) => r.metric))];
    for (const metric of metrics) {
      const rows = ref.filter((r) => r.metric === metric);
      const got = series[metric];
      expect(got.t).toEqual(rows.map((r) => r.b.toISOString()));
      for (const agg of aggs) {
        const column = got[agg as keyof Columns] as number[];
        expect(column).toHaveLength(rows.length);
        rows.forEach((r, i) => {
          if (agg === 'sum' || agg === 'avg') {
            const want = agg === 'sum' ? r.sum : r.sum / r.count;
            const scale = Math.max(1, Math.abs(want), r.count * 100);
            expect(Math.abs(column[i] - want)).toBeLessThanOrEqual(1e-9 * scale);
          } else {
            expect(column[i]).toBe(r[agg as 'count' | 'min' | 'max' | 'first' | 'last']);
          }
        });
      }
    }
  }

  const SPRING = ['2026-03-27T00:00:00Z', '2026-04-01T00:00:00Z'];
  const FALL = ['2026-10-23T00:00:00Z', '2026-10-28T00:00:00Z'];
  const YEAR = ['2026-01-01T00:00:00Z', '2027-01-01T00:00:00Z'];
  const cases: Array<[string, string, string[]]> = [];
  for (const tz of ['UTC', 'Europe/Paris', 'Asia/Kolkata']) {
    for (const interval of ['1m', '5m', '15m', '90m', '1h', '2h', '1d']) {
      cases.push([interval, tz, SPRING], [interval, tz, FALL]);
    }
    for (const interval of ['1h', '7h', '1d', '1w', '1mo']) cases.push([interval, tz, YEAR]);
  }
  // Summer in Paris: one offset over the whole range.
  for (const interval of ['5m', '45m', '2h']) cases.push([interval, 'Europe/Paris', ['2026-06-01T00:00:00Z', '2026-06-20T00:00:00Z']]);

  describe('exact figures', () => {
    it.each(cases)('%s buckets in %s over %j equal a GROUP BY over samples, from every tier that may serve them', async (interval, tz, [from, to]) => {
      const ref = await reference(['dev-s'], interval, tz, from, to);
      expect(ref.length).toBeGreaterThan(0);
      const qs = new URLSearchParams({ interval, tz, from, to, agg: ALL_AGGS });
      const { status, body } = await get(`/api/devices/dev-s/series?${qs}`);
      expect(status).toBe(200);
      expect(body).toMatchObject({ deviceId: 'dev-s', interval, tz, from: new Date(from).toISOString(), to: new Date(to).toISOString() });
      expect(Object.keys(body.series as object).sort()).toEqual(['hum', 'temp']);
      expectSame(body.series as Record<string, Columns>, ref, ALL_AGGS.split(','));

      // Each tier on its own, where it is allowed, gives the same figures (and the raw one always may).
      const queries = backend.app.get(SeriesQueries);
      const parsed = parseInterval(interval)!;
      const frame = await queries.frame(parsed, tz, new Date(from), new Date(to), { labels: false, count: false });
      const countOnly = ['count', 'sum', 'min', 'max'] as const;
      const tiers = new Set<Tier>(['raw', chooseTier(parsed, countOnly, frame), chooseTier(parsed, ['first'], frame)]);
      // With a zone whose offset does not change over the range, the cheaper bin expression is checked too.
      const runs: Array<[Tier, number | undefined]> = [...tiers].map((tier) => [tier, undefined]);
      if (frame.offsetS !== undefined) runs.push(['raw', frame.offsetS], ['minute', frame.offsetS]);
      for (const [tier, offsetS] of runs) {
        const aggs = tier === 'hour' ? [...countOnly] : [...countOnly, 'first' as const, 'last' as const];
        const rows = await queries.buckets(
          { devices: ['dev-s'], metrics: undefined, from: new Date(from), to: new Date(to), interval: parsed, tz, aggs },
          tier,
          offsetS,
        );
        const got: Record<string, Columns> = {};
        for (const r of rows) {
          const c = (got[r.metric] ??= { t: [], count: [], sum: [], min: [], max: [], first: [], last: [] });
          c.t.push(r.bucket.toISOString());
          c.count!.push(r.count);
          c.sum!.push(r.sum);
          c.min!.push(r.min);
          c.max!.push(r.max);
          c.first!.push(r.first as number);
          c.last!.push(r.last as number);
        }
        expectSame(got, ref, tier === 'hour' ? [...countOnly] : [...countOnly, 'first', 'last']);
      }
    });

    it('serves whole-hour buckets in whole-hour zones from the hourly tier, and the rest from the minute tier', async () => {
      const queries = backend.app.get(SeriesQueries);
      const spy = jest.spyOn(queries, 'buckets');
      try {
        const tierOf = async (params: Record<string, string>) => {
          spy.mockClear();
          const qs = new URLSearchParams({ from: SPRING[0], to: SPRING[1], ...params });
          expect((await get(`/api/devices/dev-s/series?${qs}`)).status).toBe(200);
          return spy.mock.calls[0][1];
        };
        expect(await tierOf({ interval: '1h', tz: 'Europe/Paris' })).toBe('hour');
        expect(await tierOf({ interval: '1d', tz: 'Europe/Paris' })).toBe('hour');
        expect(await tierOf({ interval: '1h', tz: 'Asia/Kolkata' })).toBe('minute');
        expect(await tierOf({ interval: '5m', tz: 'UTC' })).toBe('minute');
        expect(await tierOf({ interval: '1d', tz: 'UTC', agg: 'first,last' })).toBe('minute');
      } finally {
        spy.mockRestore();
      }
    });

    it('aggregates the same buckets over several devices, and over every device by default', async () => {
      const [from, to] = FALL;
      const qs = new URLSearchParams({ metric: 'temp', devices: 'dev-t,dev-s', interval: '1h', tz: 'Europe/Paris', from, to, agg: 'count,sum,min,max,avg' });
      const { status, body } = await get(`/api/series?${qs}`);
      expect(status).toBe(200);
      expect(body).toMatchObject({
        devices: ['dev-s', 'dev-t'],
        interval: '1h',
        tz: 'Europe/Paris',
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
      });
      expect(Object.keys(body.series as object)).toEqual(['temp']);
      const ref = (await reference(['dev-s', 'dev-t'], '1h', 'Europe/Paris', from, to)).filter((r) => r.metric === 'temp');
      expectSame(body.series as Record<string, Columns>, ref, ['count', 'sum', 'min', 'max', 'avg']);

      qs.delete('devices');
      const all = await get(`/api/series?${qs}`);
      expect(all.status).toBe(200);
      const everyDevice = (await backend.query<{ id: string }>(`SELECT id FROM devices ORDER BY id`)).map((r) => r.id);
      expect(all.body.devices).toEqual(everyDevice);
      expectSame(
        all.body.series as Record<string, Columns>,
        (await reference(everyDevice, '1h', 'Europe/Paris', from, to)).filter((r) => r.metric === 'temp'),
        ['count', 'sum'],
      );
    });
  });

  describe('bucket alignment', () => {
    const series = async (params: Record<string, string>) => {
      const { status, body } = await get(`/api/devices/dev-s/series?${new URLSearchParams({ metric: 'temp', ...params })}`);
      expect(status).toBe(200);
      return (body.series as Record<string, Columns>).temp;
    };
    /** Weekday, day of month and wall-clock time of an instant in a zone. */
    const local = (iso: string, tz: string) => {
      const parts = new Intl.DateTimeFormat('en-GB', {
        timeZone: tz,
        weekday: 'short',
        day: 'numeric',
        hour: '2-digit',
        minute: '2-digit',
        hourCycle: 'h23',
      }).formatToParts(new Date(iso));
      const part = (type: string) => parts.find((p) => p.type === type)?.value;
      return { weekday: part('weekday'), day: Number(part('day')), time: `${part('hour')}:${part('minute')}` };
    };

    it('1d in Europe/Paris starts at local midnight: 23 hours on the spring-forward day, 25 on the fall-back day', async () => {
      const spring = await series({ interval: '1d', tz: 'Europe/Paris', fill: 'null', from: '2026-03-27T23:00:00Z', to: '2026-03-31T22:00:00Z' });
      expect(spring.t).toEqual(['2026-03-27T23:00:00.000Z', '2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z', '2026-03-30T22:00:00.000Z']);
      const fall = await series({ interval: '1d', tz: 'Europe/Paris', fill: 'null', from: '2026-10-23T22:00:00Z', to: '2026-10-26T23:00:00Z' });
      expect(fall.t).toEqual(['2026-10-23T22:00:00.000Z', '2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z']);
      expect(fall.count!.every((n) => n > 0)).toBe(true);
    });

    it('1h in Europe/Paris on the DST days follows the local clock (23 buckets on the short day)', async () => {
      const spring = await series({ interval: '1h', tz: 'Europe/Paris', fill: 'null', from: '2026-03-28T23:00:00Z', to: '2026-03-29T22:00:00Z' });
      expect(spring.t).toHaveLength(23);
      expect(spring.t.map((t) => local(t, 'Europe/Paris').time)).not.toContain('02:00');
      expect(spring.t.every((t) => local(t, 'Europe/Paris').time.endsWith(':00'))).toBe(true);
    });

    it('1h in Europe/Paris the night clocks go back: the repeated local hour is two buckets, 25 in the day', async () => {
      const fall = await series({ interval: '1h', tz: 'Europe/Paris', fill: 'null', from: '2026-10-24T22:00:00Z', to: '2026-10-25T23:00:00Z' });
      expect(fall.t).toEqual(Array.from({ length: 25 }, (_, h) => new Date(Date.UTC(2026, 9, 24, 22 + h)).toISOString()));
      expect(fall.t.map((t) => local(t, 'Europe/Paris').time).filter((t) => t === '02:00')).toHaveLength(2);
      expect(fall.count!.every((n) => n > 0)).toBe(true);
    });

    it('1h in Asia/Kolkata starts at half past the UTC hour', async () => {
      const s = await series({ interval: '1h', tz: 'Asia/Kolkata', from: SPRING[0], to: SPRING[1] });
      expect(s.t.length).toBeGreaterThan(50);
      expect(s.t.every((t) => t.slice(13) === ':30:00.000Z')).toBe(true);
    });

    it('1w starts on Monday and 1mo on the 1st, at local midnight', async () => {
      const weeks = await series({ interval: '1w', tz: 'Europe/Paris', from: YEAR[0], to: YEAR[1] });
      expect(weeks.t.length).toBeGreaterThan(40);
      expect(weeks.t.every((t) => local(t, 'Europe/Paris').weekday === 'Mon' && local(t, 'Europe/Paris').time === '00:00')).toBe(true);
      const months = await series({ interval: '1mo', tz: 'Asia/Kolkata', from: YEAR[0], to: YEAR[1], fill: 'null' });
      // 1 January 00:00 in Kolkata is 31 December 18:30 UTC: before `from`, so February 2026 … January 2027.
      expect(months.t).toHaveLength(12);
      expect(months.t[0]).toBe('2026-01-31T18:30:00.000Z');
      expect(months.t.at(-1)).toBe('2026-12-31T18:30:00.000Z');
      expect(months.t.every((t) => local(t, 'Asia/Kolkata').day === 1 && local(t, 'Asia/Kolkata').time === '00:00')).toBe(true);
    });

    it('fill=null lists every bucket of the range, empty ones with count 0 and null elsewhere', async () => {
      const s = await series({ interval: '1h', from: '2026-06-09T22:00:00Z', to: '2026-06-10T04:00:00Z', fill: 'null', agg: 'count,avg,first' });
      expect(s.t).toEqual([22, 23, 0, 1, 2, 3].map((h) => `2026-06-${h >= 22 ? '09' : '10'}T${String(h).padStart(2, '0')}:00:00.000Z`));
      expect(s.count!.slice(0, 2)).toEqual([0, 0]);
      expect(s.avg!.slice(0, 2)).toEqual([null, null]);
      expect(s.first!.slice(0, 2)).toEqual([null, null]);
      expect(s.count![2]).toBeGreaterThan(100); // the dense stretch
      const none = await series({ interval: '1h', from: '2026-06-09T22:00:00Z', to: '2026-06-10T04:00:00Z' });
      expect(none.t.length).toBeLessThan(6);
    });

    it('answers every metric of the device when metric is absent, and a requested metric without data as empty', async () => {
      const { body } = await get(`/api/devices/dev-s/series?${new URLSearchParams({ metric: 'temp,nothing', from: SPRING[0], to: SPRING[1] })}`);
      expect(Object.keys(body.series as object)).toEqual(['nothing', 'temp']);
      expect((body.series as Record<string, Columns>).nothing).toEqual({ t: [], count: [], min: [], max: [], avg: [] });
    });
  });

  describe('errors', () => {
    it.each([
      ['interval=0m', 'interval must be Nm (N from 1 to 1440), Nh (N from 1 to 168), 1d, 1w or 1mo'],
      ['interval=2d', 'interval must be Nm (N from 1 to 1440), Nh (N from 1 to 168), 1d, 1w or 1mo'],
      ['tz=Mars/Olympus', 'tz must be an IANA time zone such as Europe/Paris; unknown: Mars/Olympus'],
      ['agg=median', 'agg must be a comma-separated list of count, sum, min, max, avg, first, last'],
      ['fill=zero', 'fill must be none or null'],
      ['from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 'from must be before to'],
      ['from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'from must be before to'],
    ])('%s → 400', async (qs, message) => {
      expect(await get(`/api/devices/dev-s/series?${qs}`)).toEqual({ status: 400, body: { statusCode: 400, message } });
    });

    it('refuses more than 10000 buckets, empty ones included, naming the limit; exactly 10000 is answered', async () => {
      const from = Date.UTC(2026, 5, 1);
      const ok = await get(
        `/api/devices/dev-s/series?interval=1m&from=${new Date(from).toISOString()}&to=${new Date(from + 10_000 * MIN).toISOString()}&fill=null&metric=temp`,
      );
      expect(ok.status).toBe(200);
      expect((ok.body.series as Record<string, Columns>).temp.t).toHaveLength(10_000);
      for (const tz of ['UTC', 'Asia/Kolkata']) {
        const tooMany = await get(
          `/api/devices/dev-s/series?interval=1m&tz=${tz}&from=${new Date(from).toISOString()}&to=${new Date(from + 10_001 * MIN).toISOString()}`,
        );
        expect(tooMany).toEqual({
          status: 400,
          body: { statusCode: 400, message: 'more than 10000 buckets of 1m between from and to; narrow the range or widen the interval' },
        });
      }
      const years = await get(`/api/devices/dev-s/series?interval=1h&from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z`);
      expect(years.status).toBe(400);
      expect(years.body.message).toContain('10000');
    });

    it('unknown device → 404 on every route; first/last over several devices → 400', async () => {
      expect(await get('/api/devices/nobody/series')).toEqual({ status: 404, body: { statusCode: 404, message: 'device nobody not found' } });
      expect(await get('/api/series?devices=dev-s,nobody')).toEqual({ status: 404, body: { statusCode: 404, message: 'device nobody not found' } });
      expect((await fetch(`${backend.app.baseUrl}/api/devices/nobody/samples.csv`)).status).toBe(404);
      expect((await get('/api/series?agg=first')).status).toBe(400);
      expect((await get('/api/devices/bad%20id/series')).status).toBe(400);
    });
  });

  describe('cache', () => {
    it('caches an answer whose range is closed, not one that reaches into the current minute, and DELETE removes it', async () => {
      const now = Date.now();
      await write([{ deviceId: 'dev-c', metric: 'temp', ts: now - 2 * HOUR, value: 1 }]);
      const cache = backend.app.get(CacheService);
      const pattern = `telemetry:series:{dev-c}:*`;
      expect(await cache.countKeys(pattern)).toBe(0);

      const open = await get(`/api/devices/dev-c/series?interval=1h`);
      expect(open.status).toBe(200);
      expect(await cache.countKeys(pattern)).toBe(0);

      const to = new Date(Math.floor(now / HOUR) * HOUR - HOUR).toISOString();
      const from = new Date(Date.parse(to) - 6 * HOUR).toISOString();
      const closed = await get(`/api/devices/dev-c/series?interval=1h&from=${from}&to=${to}`);
      expect(closed.status).toBe(200);
      expect(await cache.countKeys(pattern)).toBe(1);
      // The key is the device's, in its hash tag; the same request is answered from it.
      expect(await cache.get(cacheKeys.series('dev-c', `1h:UTC:count,min,max,avg:none:*:${Date.parse(from)}:${Date.parse(to)}`))).toBe(
        JSON.stringify(closed.body),
      );
      expect(await get(`/api/devices/dev-c/series?interval=1h&from=${from}&to=${to}`)).toEqual(closed);

      const deleted = await fetch(`${backend.app.baseUrl}/api/devices/dev-c`, { method: 'DELETE', headers: { 'x-api-key': ADMIN_KEY } });
      expect(deleted.status).toBe(204);
      expect(await cache.countKeys(pattern)).toBe(0);
      expect((await get(`/api/devices/dev-c/series?interval=1h&from=${from}&to=${to}`)).status).toBe(404);
      expect(await backend.query(`SELECT 1 FROM minute_aggregates WHERE device_id = 'dev-c'`)).toEqual([]);
    });
  });

  describe('minute tier', () => {
    /** Rows of minute_aggregates for `device` that differ from a GROUP BY over samples. */
    const drift = (device: string) =>
      backend.query(
        `WITH want AS (
          SELECT device_id, metric, date_trunc('minute', ts, 'UTC') AS bucket, count(*)::int AS count, sum(value) AS sum, min(value) AS min, max(value) AS max,
            min(ts) AS first_ts, (array_agg(value ORDER BY ts))[1] AS first, max(ts) AS last_ts, (array_agg(value ORDER BY ts DESC))[1] AS last
          FROM samples WHERE device_id = $1 GROUP BY 1, 2, 3
        ), have AS (SELECT device_id, metric, bucket, count, sum, min, max, first_ts, first, last_ts, last FROM minute_aggregates WHERE device_id = $1)
        SELECT 'missing' AS side, w.* FROM want w LEFT JOIN have h USING (device_id, metric, bucket)
          WHERE h.count IS DISTINCT FROM w.count OR h.min IS DISTINCT FROM w.min OR h.max IS DISTINCT FROM w.max
             OR h.first_ts IS DISTINCT FROM w.first_ts OR h.first IS DISTINCT FROM w.first OR h.last_ts IS DISTINCT FROM w.last_ts
             OR h.last IS DISTINCT FROM w.last OR abs(h.sum - w.sum) > 1e-9 * greatest(1, abs(w.sum))
        UNION ALL
        SELECT 'extra', h.* FROM have h LEFT JOIN want w USING (device_id, metric, bucket) WHERE w.device_id IS NULL`,
        [device],
      );

    it('equals a GROUP BY minute over samples for the fixture', async () => {
      expect(await drift('dev-s')).toEqual([]);
      expect(await drift('dev-t')).toEqual([]);
    });

    it('equals a GROUP BY minute over samples after any sequence of batches, duplicates and redeliveries', async () => {
      const base = Date.UTC(2026, 10, 20, 10);
      const point = fc.record({
        device: fc.constantFrom('a', 'b'),
        metric: fc.constantFrom('x', 'y'),
        // A few minutes, with collisions on the same millisecond likely.
        ts: fc.integer({ min: 0, max: 4 * MIN }).map((t) => base + (t % 7 === 0 ? t - (t % 1000) : t)),
        value: fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }),
      });
      const step = fc.oneof(
        { arbitrary: fc.array(point, { minLength: 1, maxLength: 40 }).map((points) => ({ kind: 'batch' as const, points })), weight: 4 },
        { arbitrary: fc.nat().map((n) => ({ kind: 'redeliver' as const, n })), weight: 1 },
      );
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 8 }), async (steps) => {
          const tag = `prop-${run++}-`;
          const sent: Sample[][] = [];
          for (const s of steps) {
            const batch =
              s.kind === 'batch'
                ? s.points.map((p) => ({ deviceId: tag + p.device, metric: p.metric, ts: p.ts, value: Object.is(p.value, -0) ? 0 : p.value }))
                : sent.length > 0
                  ? sent[s.n % sent.length]
                  : [];
            if (batch.length === 0) continue;
            await write(batch);
            sent.push(batch);
          }
          for (const d of ['a', 'b']) expect(await drift(tag + d)).toEqual([]);
        }),
        { numRuns: options.propertyRuns },
      );
    });
  });

  describe('CSV export', () => {
    const N = options.csvRows;
    const first = Date.UTC(2026, 7, 1);

    beforeAll(async () => {
      // Two metrics, interleaved in time; written in batches out of order.
      const rows: Sample[] = [];
      for (let i = 0; i < N; i++) rows.push({ deviceId: 'dev-csv', metric: i % 2 ? 'b' : 'a', ts: first + Math.floor(i / 2) * 1000 + (i % 2), value: i / 4 });
      const batches: Sample[][] = [];
      for (let i = 0; i < rows.length; i += 5000) batches.push(rows.slice(i, i + 5000));
      for (const batch of batches.reverse()) await write(batch);
    }, 600_000);

    /** GET with node:http so the test controls when the body is read. */
    function open(path: string): Promise<import('node:http').IncomingMessage> {
      return new Promise((resolve, reject) => httpRequest(`${backend.app.baseUrl}${path}`, resolve).on('error', reject).end());
    }

    it(`streams every row (${N}) oldest first as ts,metric,value`, async () => {
      const res = await open('/api/devices/dev-csv/samples.csv');
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/csv; charset=utf-8');
      let lines = 0;
      let last = '';
      let header = '';
      let prevTs = '';
      let ordered = true;
      let sample = '';
      let rest = '';
      for await (const chunk of res) {
        const parts = (rest + String(chunk)).split('\n');
        rest = parts.pop() as string;
        for (const line of parts) {
          if (lines === 0) header = line;
          else {
            const ts = line.slice(0, 24);
            if (ts < prevTs) ordered = false;
            prevTs = ts;
            if (lines === 2) sample = line;
            last = line;
          }
          lines++;
        }
      }
      expect(rest).toBe('');
      expect(header).toBe('ts,metric,value');
      expect(lines - 1).toBe(N);
      expect(ordered).toBe(true);
      expect(sample).toBe(`${new Date(first + 1).toISOString()},b,0.25`);
      const i = N - 1;
      expect(last).toBe(`${new Date(first + Math.floor(i / 2) * 1000 + (i % 2)).toISOString()},${i % 2 ? 'b' : 'a'},${i / 4}`);
    }, 300_000);

    it('filters by metric and range', async () => {
      const from = new Date(first + 10_000).toISOString();
      const to = new Date(first + 20_000).toISOString();
      const res = await fetch(`${backend.app.baseUrl}/api/devices/dev-csv/samples.csv?metric=a&from=${from}&to=${to}`);
      const text = await res.text();
      const lines = text.trimEnd().split('\n');
      expect(lines[0]).toBe('ts,metric,value');
      expect(lines.slice(1)).toEqual(Array.from({ length: 10 }, (_, k) => `${new Date(first + (10 + k) * 1000).toISOString()},a,${(2 * (10 + k)) / 4}`));
    });

    if (options.csvBackPressure) {
      it('fetches from the cursor only as fast as the client reads (memory does not grow with the row count)', async () => {
        const ds = backend.app.get(DatabaseService).dataSource;
        const original = ds.createQueryRunner.bind(ds);
        let fetches = 0;
        const spy = jest.spyOn(ds, 'createQueryRunner').mockImplementation((...args) => {
          const runner = original(...args);
          const query = runner.query.bind(runner);
          runner.query = ((sql: string, params?: unknown[]) => {
            if (sql.startsWith('FETCH')) fetches++;
            return query(sql, params);
          }) as typeof runner.query;
          return runner;
        });
        try {
          const res = await open('/api/devices/dev-csv/samples.csv');
          res.pause();
          await new Promise((r) => setTimeout(r, 3000));
          const whilePaused = fetches;
          let bytes = 0;
          for await (const chunk of res) bytes += (chunk as Buffer).length;
          const total = fetches;
          expect(bytes).toBeGreaterThan(N * 30);
          expect(total).toBeGreaterThanOrEqual(Math.floor(N / 2000));
          // Paused, the server filled the socket and stream buffers (a few MB) and stopped.
          expect(whilePaused).toBeLessThan(total / 2);
        } finally {
          spy.mockRestore();
        }
      }, 300_000);

      it('runs at most two exports at once (each holds a pool connection); a third waits for a slot and then completes', async () => {
        const ds = backend.app.get(DatabaseService).dataSource;
        const original = ds.createQueryRunner.bind(ds);
        let cursors = 0;
        const spy = jest.spyOn(ds, 'createQueryRunner').mockImplementation((...args) => {
          const runner = original(...args);
          const query = runner.query.bind(runner);
          runner.query = ((sql: string, params?: unknown[]) => {
            if (sql.startsWith('DECLARE')) cursors++;
            return query(sql, params);
          }) as typeof runner.query;
          return runner;
        });
        const responses: Array<import('node:http').IncomingMessage> = [];
        try {
          responses.push(...(await Promise.all([0, 1, 2].map(() => open('/api/devices/dev-csv/samples.csv')))));
          for (const res of responses) res.pause();
          await new Promise((r) => setTimeout(r, 2000));
          expect(cursors).toBe(2);
          const sizes = await Promise.all(
            responses.map(async (res) => {
              let lines = 0;
              for await (const chunk of res) lines += String(chunk).split('\n').length - 1;
              return lines;
            }),
          );
          expect(sizes).toEqual([N + 1, N + 1, N + 1]);
          expect(cursors).toBe(3);
        } finally {
          spy.mockRestore();
          for (const res of responses) res.destroy();
        }
      }, 300_000);
    }
  });
}
