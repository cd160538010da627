// Grafana's Devices dashboard against the real schema: every panel query and
// every query variable of grafana/dashboards/devices.json is expanded the way
// Grafana's PostgreSQL data source does it (test/support/grafana-sql.ts) and
// run on a migrated database holding known samples; each must run, return the
// columns its panel expects, and give the figures a GROUP BY over samples
// gives. Short ranges must read the minute rollups (one point per minute) and
// long ones the hourly rollups (still there once minute rows are gone).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/storage/data-source-options';
import { type GrafanaQueryContext, expandMacros, grafanaSql, interpolateVariables } from '../support/grafana-sql';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const GRAFANA = join(__dirname, '..', '..', 'grafana');
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Target {
  refId: string;
  rawSql?: string;
  format?: string;
  datasource?: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  repeat?: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  query: string;
  multi?: boolean;
  includeAll?: boolean;
  datasource?: { type: string; uid: string };
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(readFileSync(join(GRAFANA, 'dashboards', 'devices.json'), 'utf8')) as Dashboard;
const panel = (title: RegExp): Panel => {
  const found = dashboard.panels.filter((p) => title.test(p.title));
  if (found.length !== 1) throw new Error(`${found.length} panels match ${title}`);
  return found[0];
};
const sqlOf = (p: Panel): string => {
  const sql = p.targets?.[0]?.rawSql;
  if (!sql) throw new Error(`panel "${p.title}" has no rawSql`);
  return sql;
};
const variable = (name: string): Variable => {
  const found = dashboard.templating.list.find((v) => v.name === name);
  if (!found) throw new Error(`no variable ${name}`);
  return found;
};

describe('Grafana macro expansion (as the PostgreSQL data source does it)', () => {
  const ctx: GrafanaQueryContext = {
    from: new Date('2026-11-21T10:00:00.000Z'),
    to: new Date('2026-11-21T12:30:15.250Z'),
    intervalMs: 5 * MINUTE,
    variables: {
      device: { value: "o'brien", multi: false },
      metric: { value: ['temp', "it's"], multi: true },
      one: { value: 'temp', multi: true },
    },
  };

  it('formats single, multi-value and built-in variables like Grafana', () => {
    expect(interpolateVariables(`d = '$device' AND m IN ($metric) AND x IN (\${one}) AND i = '[[__interval]]' $__interval_ms $__timeFrom()`, ctx)).toBe(
      `d = 'o''brien' AND m IN ('temp','it''s') AND x IN ('temp') AND i = '5m' 300000 $__timeFrom()`,
    );
  });

  it('expands the time macros into literal UTC times and epoch arithmetic', () => {
    expect(expandMacros('SELECT $__timeGroupAlias(bucket, $__interval), x FROM t WHERE $__timeFilter(bucket)', ctx)).toBe(
      `SELECT floor(extract(epoch from bucket)/300)*300 AS "time", x FROM t WHERE bucket BETWEEN '2026-11-21T10:00:00Z' AND '2026-11-21T12:30:15.25Z'`,
    );
    expect(expandMacros(`$__timeFrom() $__timeTo() $__timeGroup(ts, '1h') $__timeGroup(ts,1m), $__time(ts)`, ctx)).toBe(
      `'2026-11-21T10:00:00Z' '2026-11-21T12:30:15.25Z' floor(extract(epoch from ts)/3600)*3600 floor(extract(epoch from ts)/60)*60 AS "time", ts AS "time"`,
    );
    expect(() => expandMacros('$__nope(x)', ctx)).toThrow('unknown macro');
    expect(() => expandMacros('$__timeGroup(ts, soon)', ctx)).toThrow('error parsing interval');
  });
});

describe('Grafana provisioning', () => {
  const datasources = readFileSync(join(GRAFANA, 'provisioning', 'datasources', 'postgres.yml'), 'utf8');

  it('provisions the PostgreSQL data source the Devices dashboard uses, on a read-only login', () => {
    const uid = /^\s+uid:\s*(\S+)/m.exec(datasources)?.[1];
    const type = /^\s+type:\s*(\S+)/m.exec(datasources)?.[1];
    expect({ uid, type }).toEqual({ uid: 'telemetry-postgres', type: 'grafana-postgresql-datasource' });
    expect(datasources).toMatch(/^\s+user: grafana_reader$/m);
    expect(datasources).toMatch(/^\s+password: \$GRAFANA_DB_PASSWORD$/m);
    const compose = readFileSync(join(GRAFANA, '..', 'docker-compose.yml'), 'utf8');
    expect(compose.match(/GRAFANA_DB_PASSWORD: \$\{GRAFANA_DB_PASSWORD\}/g)).toHaveLength(2); // postgres (creates the role) and grafana
    expect(readFileSync(join(GRAFANA, '..', '.env.example'), 'utf8')).toMatch(/^GRAFANA_DB_PASSWORD=\S+$/m);

    const refs = [
      ...dashboard.panels.flatMap((p) => [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]),
      ...dashboard.templating.list.map((v) => v.datasource),
    ];
    expect(refs.length).toBeGreaterThan(10);
    for (const ref of refs) expect(ref).toEqual({ type, uid });
    for (const p of dashboard.panels) expect({ title: p.title, sql: typeof p.targets?.[0]?.rawSql }).toEqual({ title: p.title, sql: 'string' });
  });
});

describeWithServers(['postgres'])('Grafana Devices dashboard on the real schema', () => {
  let db: TestDatabase;
  const now = Date.now();
  // Raw samples: dev-a every 20 s over the last 3 hours (two metrics), and
  // every 10 minutes from 8 days to 3 days ago; dev-b a few, as noise.
  const recentStart = Math.floor((now - 3 * HOUR) / MINUTE) * MINUTE;

  beforeAll(async () => {
    db = await createTestDatabase('grafana_devices');
    const source = new DataSource(dataSourceOptions(db.url, 1));
    await source.initialize();
    try {
      await source.runMigrations({ transaction: 'each' });
    } finally {
      await source.destroy();
    }
    const rows: Array<[string, string, number, number]> = [];
    for (let t = recentStart; t < now - 5000; t += 20_000) {
      const i = (t - recentStart) / 20_000;
      rows.push(['dev-a', 'temperature', t, 20 + Math.sin(i / 7) * 3 + (i % 5) * 0.1]);
      rows.push(['dev-a', 'humidity', t + 3000, 50 - (i % 11)]);
    }
    for (let t = now - 8 * DAY; t < now - 3 * DAY; t += 10 * MINUTE) rows.push(['dev-a', 'temperature', t, 10 + ((t / MINUTE) % 13)]);
    for (let t = now - 2 * HOUR; t < now; t += 15 * MINUTE) rows.push(['dev-b', 'temperature', t, 99]);
    await db.query(
      `INSERT INTO samples (device_id, metric, ts, value)
       SELECT d, m, to_timestamp(ms / 1000.0), v FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[]) AS t(d, m, ms, v)`,
      [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2]), rows.map((r) => r[3])],
    );
    // As the service keeps them: minutes before the last hour folded into hourly_aggregates, the rest
    // not yet (the dashboard reads the hourly tier through hourly_parts, which adds those in).
    const split = `date_trunc('hour', now(), 'UTC') - interval '1 hour'`;
    await db.query(`
      INSERT INTO hourly_aggregates (device_id, metric, bucket, count, sum, min, max)
      SELECT device_id, metric, date_trunc('hour', ts, 'UTC'), count(*), sum(value), min(value), max(value) FROM samples
      WHERE ts < ${split} GROUP BY 1, 2, 3`);
    await db.query(`
      INSERT INTO minute_aggregates (device_id, metric, bucket, count, sum, min, max, first_ts, first, last_ts, last, folded)
      SELECT device_id, metric, date_trunc('minute', ts, 'UTC'), count(*), sum(value), min(value), max(value),
        min(ts), (array_agg(value ORDER BY ts))[1], max(ts), (array_agg(value ORDER BY ts DESC))[1], date_trunc('minute', ts, 'UTC') < ${split}
      FROM samples GROUP BY 1, 2, 3`);
    // As retention would leave it: minute rollups only for the last 2 days, hourly ones for all time.
    await db.query(`DELETE FROM minute_aggregates WHERE bucket < now() - interval '2 days'`);
    await db.query(`
      INSERT INTO devices (id, first_seen, last_seen) SELECT device_id, min(ts), max(ts) FROM samples GROUP BY 1`);
    // Grafana's session zone is the server's; the queries must not depend on it.
    await db.query(`SET TIME ZONE 'Asia/Kolkata'`);
  });

  afterAll(async () => {
    await db?.drop();
  });

  const context = (rangeMs: number, intervalMs: number, metric: string | string[]): GrafanaQueryContext => ({
    from: new Date(now - rangeMs),
    to: new Date(now),
    intervalMs,
    variables: { device: { value: 'dev-a', multi: false }, metric: { value: metric, multi: true } },
  });
  const run = <T = Record<string, unknown>>(rawSql: string, ctx: GrafanaQueryContext) => {
    const sql = grafanaSql(rawSql, ctx);
    expect(sql).not.toMatch(/\$\w|\[\[/); // nothing left unexpanded
    return db.query<T>(sql);
  };
  /** Grafana's time_series buckets, computed from raw samples over the tier's buckets that start in [from, to]. */
  const expectedBuckets = (ctx: GrafanaQueryContext, tier: 'minute' | 'hour', metric: string) =>
    db.query<{ time: number | string; avg: number; min: number; max: number; samples: string }>(
      `SELECT floor(extract(epoch from ts) / $5) * $5 AS "time", avg(value) AS avg, min(value) AS min, max(value) AS max, count(*)::text AS samples
       FROM samples WHERE device_id = $1 AND metric = $2 AND date_trunc('${tier}', ts, 'UTC') BETWEEN $3 AND $4
       GROUP BY 1 ORDER BY 1`,
      ['dev-a', metric, ctx.from, ctx.to, ctx.intervalMs / 1000],
    );
  /** Rows with numbers (and PostgreSQL's numeric strings in "time") rounded to 9 significant digits, for float comparisons. */
  const close = (rows: Array<Record<string, unknown>>) =>
    rows.map((r) =>
      Object.fromEntries(
        Object.entries(r).map(([k, v]) => [k, k === 'time' && typeof v === 'string' ? Number(v) : typeof v === 'number' ? Number(v.toPrecision(9)) : v]),
      ),
    );

  it('lists the devices and, for the chosen device, its metrics', async () => {
    expect(await run(variable('device').query, context(HOUR, MINUTE, []))).toEqual([{ id: 'dev-a' }, { id: 'dev-b' }]);
    expect(await run(variable('metric').query, context(HOUR, MINUTE, []))).toEqual([{ metric: 'humidity' }, { metric: 'temperature' }]);
    expect(variable('metric')).toMatchObject({ multi: true, includeAll: true });
    expect(variable('device')).toMatchObject({ multi: false });
  });

  it.each([
    ['2 hours at 1m', 2 * HOUR, MINUTE],
    ['2 hours at 5m', 2 * HOUR, 5 * MINUTE],
    ['24 hours at 1m', 24 * HOUR, MINUTE],
  ])('draws avg with min/max from the minute rollups over %s', async (_label, range, interval) => {
    const avgPanel = panel(/avg with min\/max/);
    expect(avgPanel.repeat).toBe('metric');
    for (const metric of ['temperature', 'humidity']) {
      const ctx = context(range, interval, metric); // a repeated panel gets one value of the multi-value variable
      const rows = await run(sqlOf(avgPanel), ctx);
      const expected = await expectedBuckets(ctx, 'minute', metric);
      expect(expected.length).toBeGreaterThan(interval === MINUTE ? 100 : 20);
      expect(close(rows)).toEqual(close(expected.map(({ time, avg, min, max }) => ({ time, avg, min, max }))));
    }
  });

  it.each([
    ['7 days at 1h', 7 * DAY, HOUR],
    ['7 days at 10m', 7 * DAY, 10 * MINUTE],
  ])('reads the hourly rollups over %s, beyond what the minute tier keeps', async (_label, range, interval) => {
    const ctx = context(range, interval, 'temperature');
    const rows = await run<{ time: number | string }>(sqlOf(panel(/avg with min\/max/)), ctx);
    const hourly = await expectedBuckets({ ...ctx, intervalMs: HOUR }, 'hour', 'temperature');
    expect(hourly.length).toBeGreaterThan(90); // 4 days of old samples in range, and the last 3 hours
    expect(Number(rows[0].time)).toBeLessThan((now - 3 * DAY) / 1000); // older than any minute rollup left
    expect(close(rows)).toEqual(close(hourly.map(({ time, avg, min, max }) => ({ time, avg, min, max }))));
  });

  it('counts samples per interval and metric, from either tier', async () => {
    const countPanel = panel(/^Samples per interval/);
    expect(countPanel.targets?.[0].format).toBe('time_series');
    for (const [range, interval, tier] of [
      [2 * HOUR, 5 * MINUTE, 'minute'],
      [7 * DAY, HOUR, 'hour'],
    ] as const) {
      const ctx = context(range, interval, ['humidity', 'temperature']); // "All"
      const rows = await run<{ time: number | string; metric: string; samples: string }>(sqlOf(countPanel), ctx);
      const expected: Array<{ time: number | string; metric: string; samples: string }> = [];
      for (const metric of ['humidity', 'temperature']) {
        for (const b of await expectedBuckets(ctx, tier, metric)) expected.push({ time: b.time, metric, samples: b.samples });
      }
      const order = (a: { time: number | string; metric: string }, b: { time: number | string; metric: string }) =>
        Number(a.time) - Number(b.time) || a.metric.localeCompare(b.metric);
      const times = rows.map((r) => Number(r.time));
      expect(times).toEqual([...times].sort((a, b) => a - b)); // Grafana wants time ascending
      expect(close([...rows].sort(order))).toEqual(close(expected.sort(order)));
    }
  });

  it('shows the latest value of each selected metric with its last 24 hours', async () => {
    const rows = await run<Record<string, unknown>>(sqlOf(panel(/^Latest values/)), context(6 * HOUR, MINUTE, ['humidity', 'temperature']));
    const expected = await db.query<Record<string, unknown>>(`
      SELECT DISTINCT ON (metric) metric, value, ts AS "time",
        min(value) FILTER (WHERE date_trunc('hour', ts, 'UTC') > now() - interval '24 hours') OVER w AS "24 h min",
        avg(value) FILTER (WHERE date_trunc('hour', ts, 'UTC') > now() - interval '24 hours') OVER w AS "24 h avg",
        max(value) FILTER (WHERE date_trunc('hour', ts, 'UTC') > now() - interval '24 hours') OVER w AS "24 h max",
        (count(*) FILTER (WHERE date_trunc('hour', ts, 'UTC') > now() - interval '24 hours') OVER w)::text AS "24 h samples"
      FROM samples WHERE device_id = 'dev-a'
      WINDOW w AS (PARTITION BY metric)
      ORDER BY metric, ts DESC`);
    expect(rows.map((r) => Object.keys(r))).toEqual(expected.map((r) => Object.keys(r)));
    expect(close(rows)).toEqual(close(expected));
  });

  it('lists devices by last seen and counts the active ones', async () => {
    const ctx = context(HOUR, MINUTE, []);
    const seen = await run<{ device: string; 'last seen': Date; 'silent for': string | number }>(sqlOf(panel(/^Devices by last seen/)), ctx);
    expect(seen.map((r) => r.device)).toEqual(['dev-a', 'dev-b']); // dev-a sent seconds ago, dev-b 15 minutes ago
    expect(Object.keys(seen[0])).toEqual(['device', 'last seen', 'silent for', 'first seen']);
    expect(Number(seen[0]['silent for'])).toBeGreaterThanOrEqual(0);
    expect(Number(seen[0]['silent for'])).toBeLessThan(20 * 60);
    const [stat] = await run<Record<string, string>>(sqlOf(panel(/^Devices$/)), ctx);
    expect(stat).toEqual({ devices: '2', 'active (5 min)': '1' });
  });

  it('runs every panel query of the dashboard for short and long ranges', async () => {
    let ran = 0;
    for (const p of dashboard.panels) {
      for (const t of p.targets ?? []) {
        for (const [range, interval] of [
          [15 * MINUTE, MINUTE],
          [30 * DAY, 6 * HOUR],
        ]) {
          const metric = p.repeat === 'metric' ? 'temperature' : ['humidity', 'temperature'];
          const rows = await run<Record<string, unknown>>(t.rawSql as string, context(range, interval, metric));
          if (t.format === 'time_series' && rows.length > 0) expect(Object.keys(rows[0])[0]).toBe('time');
          ran++;
        }
      }
    }
    expect(ran).toBe(dashboard.panels.length * 2);
  });
});
