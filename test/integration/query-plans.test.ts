// Query plans of every read the API runs, on 1,000,000 samples (200 devices ×
// 5 metrics × 1000 points, every 5 minutes ≈ 3.5 days) with the rollups and
// devices filled to match. The partitions are laid out as after three days of
// running: the catch-all ends three days ago (so it holds the oldest half
// day) and one partition per day follows. The SQL is captured from the real
// TelemetryQueries methods (spy on DatabaseService.query) and run again under
// EXPLAIN (ANALYZE, FORMAT JSON) with the same parameters. No read may scan
// `samples` (any of its partitions) sequentially, and a time-range read may
// only plan the partitions its range overlaps; the plans' node types are
// printed, one line per query, for the docs. scripts/plans-10m.ts does the
// same on 10M rows.
import { DatabaseService } from '../../src/storage/database.service';
import { CATCHALL_NAME, DAY_MS, PartitionMaintainer, floorDay } from '../../src/storage/partition-maintainer';
import { TelemetryQueries } from '../../src/storage/telemetry-queries';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { freePort } from '../support/free-port';

const DEVICES = 200;
const METRICS = 5;
const POINTS = 1000;
const HOUR = 3600_000;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Parent Relationship'?: string;
  'Actual Rows'?: number;
  Plans?: PlanNode[];
}

function walk(node: PlanNode, out: PlanNode[] = []): PlanNode[] {
  out.push(node);
  for (const child of node.Plans ?? []) walk(child, out);
  return out;
}

interface Partition {
  name: string;
  from: Date | null;
  to: Date | null;
}

function describeNode(n: PlanNode): string {
  const on = n['Relation Name'] ? ` on ${n['Relation Name']}` : '';
  const via = n['Index Name'] ? ` using ${n['Index Name']}` : '';
  return `${n['Node Type']}${on}${via}`;
}

describeWithServers(['postgres'])('query plans on 1,000,000 samples', () => {
  let db: TestDatabase;
  let testApp: TestApp;
  const captured: Array<{ label: string; sql: string; params: unknown[] }> = [];
  const summaries: string[] = [];
  /** Every partition of samples, with its bounds (null = MINVALUE). */
  let partitions: Partition[] = [];
  const isSamples = (relation: string | undefined) => relation === 'samples' || partitions.some((p) => p.name === relation);
  const samplesPartitionsIn = (nodes: PlanNode[]) => [
    ...new Set(nodes.map((n) => n['Relation Name']).filter((r) => r !== undefined && r !== 'samples' && isSamples(r))),
  ];

  beforeAll(async () => {
    db = await createTestDatabase('query_plans');
    // Booting the app runs the migrations: the schema and indexes are the real ones.
    testApp = await startTestApp({ DATABASE_URL: db.url, MQTT_URL: undefined, MQTT_PORT: String(await freePort()) });
    // The catch-all is still empty: move its bound back three days and let the maintainer add those days.
    await db.query(`ALTER TABLE samples DETACH PARTITION ${CATCHALL_NAME}`);
    await db.query(
      `ALTER TABLE samples ATTACH PARTITION ${CATCHALL_NAME} FOR VALUES FROM (MINVALUE) TO ('${new Date(floorDay(Date.now()) - 3 * DAY_MS).toISOString()}')`,
    );
    await testApp.get(PartitionMaintainer).run();
    partitions = await db.query<Partition>(`
      SELECT c.relname AS name,
        (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
        (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'samples'::regclass`);
    expect(partitions.length).toBeGreaterThanOrEqual(12); // catch-all, 3 past days, today, 7 ahead
    const started = Date.now();
    await db.query(
      `INSERT INTO samples (device_id, metric, ts, value)
       SELECT 'dev-' || lpad(d::text, 3, '0'), 'm' || m, date_trunc('second', now()) - i * interval '5 minutes', ((d * 7 + m * 13 + i) % 1000) / 10.0
       FROM generate_series(1, $1::int) d, generate_series(1, $2::int) m, generate_series(0, $3::int - 1) i
       ORDER BY 1, 2, 3`,
      [DEVICES, METRICS, POINTS],
    );
    await db.query(
      `INSERT INTO hourly_aggregates (device_id, metric, bucket, count, sum, min, max)
       SELECT device_id, metric, date_trunc('hour', ts, 'UTC'), count(*), sum(value), min(value), max(value)
       FROM samples GROUP BY 1, 2, 3`,
    );
    await db.query(`INSERT INTO devices (id, first_seen, last_seen) SELECT device_id, min(ts), max(ts) FROM samples GROUP BY 1`);
    await db.query(`VACUUM ANALYZE samples`);
    await db.query(`VACUUM ANALYZE hourly_aggregates`);
    await db.query(`VACUUM ANALYZE devices`);
    // As on the service's own connections (data-source-options), so the printed times are the service's.
    await db.query(`SET jit = off`);
    const [{ n }] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM samples`);
    expect(n).toBe(DEVICES * METRICS * POINTS);

    console.log(`query-plans: filled ${n} samples, rollups and devices in ${Date.now() - started} ms`);

    // Capture the SQL the API runs, by running it.
    const queries = testApp.get(TelemetryQueries);
    const spy = jest.spyOn(DatabaseService.prototype, 'query');
    const run = async (label: string, fn: () => Promise<unknown>) => {
      const from = spy.mock.calls.length;
      await fn();
      for (const [sql, params] of spy.mock.calls.slice(from)) captured.push({ label, sql, params: params ?? [] });
    };
    const now = Date.now();
    const device = 'dev-007';
    try {
      await run('listDevices', () => queries.listDevices(100, 0));
      await run('listDevices(offset)', () => queries.listDevices(50, 150));
      await run('findDevice', () => queries.findDevice(device));
      await run('latest', () => queries.latest(device));
      const row = await queries.findDevice(device);
      expect(row).not.toBeNull();
      await run('stats', () => queries.stats(row!));
      await run('hourly(24h)', () => queries.hourly(device, 'm3', new Date(now - 24 * HOUR), new Date(now)));
      await run('hourly(all)', () => queries.hourly(device, 'm3', new Date(Date.UTC(2000, 0, 1)), new Date(now + 24 * HOUR)));
      await run('samples(metric)', () => queries.samples(device, 'm2', new Date(Date.UTC(2000, 0, 1)), new Date(now + 24 * HOUR + 1), 1000));
      await run('samples(all metrics)', () => queries.samples(device, undefined, new Date(Date.UTC(2000, 0, 1)), new Date(now + 24 * HOUR + 1), 1000));
      await run('samples(metric, 1h range)', () => queries.samples(device, 'm2', new Date(now - 2 * HOUR), new Date(now - HOUR), 100));
      await run('samples(all, 1h range, limit 10000)', () => queries.samples(device, undefined, new Date(now - 2 * HOUR), new Date(now - HOUR), 10000));
      await run('dashboard', () => queries.dashboard());
    } finally {
      spy.mockRestore();
    }
  }, 300_000);

  afterAll(async () => {
    await testApp?.close();
    await db?.drop();
    if (summaries.length > 0) {
      console.log(`query-plans (EXPLAIN ANALYZE on ${DEVICES * METRICS * POINTS} samples):\n${summaries.join('\n')}`);
    }
  });

  it('captured every read query of TelemetryQueries', () => {
    const labels = new Set(captured.map((c) => c.label));
    expect([...labels]).toEqual([
      'listDevices',
      'listDevices(offset)',
      'findDevice',
      'latest',
      'stats',
      'hourly(24h)',
      'hourly(all)',
      'samples(metric)',
      'samples(all metrics)',
      'samples(metric, 1h range)',
      'samples(all, 1h range, limit 10000)',
      'dashboard',
    ]);
    expect(captured.filter((c) => c.label === 'dashboard').length).toBeGreaterThanOrEqual(1);
  });

  it('the plan walk does see a Seq Scan on samples where there is one (self-check of the detector)', async () => {
    const [row] = await db.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (FORMAT JSON) SELECT count(*) FROM samples WHERE value > $1`, [50]);
    const nodes = walk(row['QUERY PLAN'][0].Plan);
    expect(nodes.some((n) => /Seq Scan$/.test(n['Node Type']) && isSamples(n['Relation Name']))).toBe(true);
    // …and it names the partitions, which the detector must recognise as samples.
    expect(nodes.some((n) => n['Relation Name'] === CATCHALL_NAME)).toBe(true);
  });

  it('a time-range read plans only the partitions its range overlaps (partition pruning)', async () => {
    const ranged = captured.filter((c) => c.label.includes('1h range'));
    expect(ranged.map((c) => c.label)).toEqual(['samples(metric, 1h range)', 'samples(all, 1h range, limit 10000)']);
    for (const { label, sql, params } of ranged) {
      // samples(deviceId, from, to, limit[, metric]): the range is $2 … $3.
      const from = new Date(params[1] as string).getTime();
      const to = new Date(params[2] as string).getTime();
      const overlapping = partitions
        .filter((p) => (p.from === null || p.from.getTime() < to) && (p.to === null || p.to.getTime() > from))
        .map((p) => p.name)
        .sort();
      const [row] = await db.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (FORMAT JSON) ${sql}`, params);
      const planned = samplesPartitionsIn(walk(row['QUERY PLAN'][0].Plan)).sort();
      expect({ label, planned }).toEqual({ label, planned: overlapping });
      expect(planned.length).toBeGreaterThanOrEqual(1);
      expect(planned.length).toBeLessThanOrEqual(2);
      expect(partitions.length).toBeGreaterThan(planned.length * 4);
    }
  });

  it('no read query scans samples sequentially', async () => {
    const offenders: string[] = [];
    const perLabel = new Map<string, number>();
    for (const { label, sql, params } of captured) {
      const n = (perLabel.get(label) ?? 0) + 1;
      perLabel.set(label, n);
      const name = captured.filter((c) => c.label === label).length > 1 ? `${label}#${n}` : label;
      const [row] = await db.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode; 'Execution Time': number }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
      const [{ Plan: plan, 'Execution Time': ms }] = row['QUERY PLAN'];
      const nodes = walk(plan);
      const scans = nodes.filter((node) => /Scan/.test(node['Node Type']) && (node['Relation Name'] || node['Index Name']));
      // 'Seq Scan' and 'Parallel Seq Scan'.
      const seq = nodes.filter((node) => /Seq Scan$/.test(node['Node Type'])).map((node) => node['Relation Name']);
      const parts = samplesPartitionsIn(nodes).length;
      summaries.push(
        `${name}: top=${plan['Node Type']}; scans=[${scans.map(describeNode).join(', ')}]${parts ? `; ${parts} samples partitions planned` : ''}` +
          `${seq.length ? `; SEQ SCAN on ${seq.join(', ')}` : ''}; ${ms.toFixed(2)} ms`,
      );
      if (seq.some(isSamples)) offenders.push(`${name}: ${nodes.map(describeNode).join(' > ')}`);
    }
    expect(summaries.length).toBe(captured.length);
    expect(offenders).toEqual([]);
  });
});
