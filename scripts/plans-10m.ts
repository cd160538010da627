// `npm run plans:10m`: the query plans of every read TelemetryQueries issues,
// on 10 million samples in daily partitions. Creates a scratch database on the
// server of DATABASE_URL (default: the local test server), migrates it with the
// real migrations, lays out partitions as if the service had been running for
// --days days, fills 1000 devices × 4 metrics × 2500 points spread over those
// days (generate_series, one INSERT per partition) plus matching rollups and
// devices, runs EXPLAIN (ANALYZE, BUFFERS) of each read, prints one JSON object
// on stdout and a readable summary on stderr, and drops the scratch database.
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Logger } from '@nestjs/common';
import { Client } from 'pg';
import { loadConfig } from '../src/config/load-config';
import { AppLogger } from '../src/logging/app-logger';
import { TelemetryQueries } from '../src/storage/telemetry-queries';
import { DatabaseService } from '../src/storage/database.service';
import { CATCHALL_NAME, DAY_MS, PartitionMaintainer, floorDay } from '../src/storage/partition-maintainer';

const { values: args } = parseArgs({
  options: {
    'database-url': { type: 'string', default: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    devices: { type: 'string', default: '1000' },
    metrics: { type: 'string', default: '4' },
    points: { type: 'string', default: '2500' },
    days: { type: 'string', default: '30' },
    keep: { type: 'boolean', default: false },
  },
});
const DEVICES = Number(args.devices);
const METRICS = Number(args.metrics);
const POINTS = Number(args.points);
const DAYS = Number(args.days);
const HOUR = 3600_000;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Loops'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  'Subplans Removed'?: number;
  Plans?: PlanNode[];
}
interface Explained {
  Plan: PlanNode;
  'Planning Time': number;
  'Execution Time': number;
}

function walk(node: PlanNode, out: PlanNode[] = []): PlanNode[] {
  out.push(node);
  for (const child of node.Plans ?? []) walk(child, out);
  return out;
}

async function main(): Promise<void> {
  Logger.overrideLogger(new AppLogger({ level: 'warn', secrets: [], instanceId: 'plans-10m', destination: process.stderr, pretty: false }));
  const serverUrl = new URL(args['database-url']);
  const name = `th_plans_${randomBytes(4).toString('hex')}`;
  const scratchUrl = new URL(serverUrl);
  scratchUrl.pathname = `/${name}`;
  const admin = new Client({ connectionString: serverUrl.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  log(`plans-10m: scratch database ${name}`);
  const db = new DatabaseService(loadConfig({ DATABASE_URL: scratchUrl.toString(), LOG_LEVEL: 'warn' }));
  try {
    await db.start();
    const result = await measure(db, name);
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await db.onApplicationShutdown();
    if (args.keep) log(`plans-10m: kept ${scratchUrl.toString()}`);
    else await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

async function measure(db: DatabaseService, database: string) {
  const now = Date.now();
  const today = floorDay(now);
  const first = today - DAYS * DAY_MS;

  // As if the service had been running for DAYS days: the (still empty)
  // catch-all ends DAYS days ago and the maintainer fills every day since.
  await db.query(`ALTER TABLE samples DETACH PARTITION ${CATCHALL_NAME}`);
  await db.query(`ALTER TABLE samples ATTACH PARTITION ${CATCHALL_NAME} FOR VALUES FROM (MINVALUE) TO ('${new Date(first).toISOString()}')`);
  await new PartitionMaintainer(db, undefined, () => now).run();
  const partitions = await db.query<{ name: string; from: Date | null; to: Date | null }>(`
    SELECT c.relname AS name,
      (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
      (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'samples'::regclass ORDER BY 2 NULLS FIRST`);

  // Point i of every series lies at start + i * step, the newest one now.
  const step = (now - first) / POINTS;
  const start = now - (POINTS - 1) * step;
  const fillStarted = Date.now();
  for (const p of partitions) {
    if (p.from === null || p.to === null) continue;
    const lo = Math.max(0, Math.ceil((p.from.getTime() - start) / step));
    const hi = Math.min(POINTS - 1, Math.ceil((p.to.getTime() - start) / step) - 1);
    if (lo > hi) continue;
    await db.query(
      `INSERT INTO ${p.name} (device_id, metric, ts, value)
       SELECT 'dev-' || lpad(d::text, 4, '0'), 'm' || m, to_timestamp(($1::float8 + i * $2::float8) / 1000), ((d * 7 + m * 13 + i) % 1000) / 10.0
       FROM generate_series(1, $3::int) d, generate_series(1, $4::int) m, generate_series($5::int, $6::int) i
       ORDER BY 1, 2, 3`,
      [start, step, DEVICES, METRICS, lo, hi],
    );
    await db.query(
      `INSERT INTO hourly_aggregates (device_id, metric, bucket, count, sum, min, max)
       SELECT device_id, metric, date_trunc('hour', ts, 'UTC'), count(*), sum(value), min(value), max(value)
       FROM ${p.name} GROUP BY 1, 2, 3
       ON CONFLICT (device_id, metric, bucket) DO UPDATE SET count = hourly_aggregates.count + EXCLUDED.count,
         sum = hourly_aggregates.sum + EXCLUDED.sum, min = LEAST(hourly_aggregates.min, EXCLUDED.min), max = GREATEST(hourly_aggregates.max, EXCLUDED.max)`,
    );
  }
  await db.query(
    `INSERT INTO devices (id, first_seen, last_seen)
     SELECT 'dev-' || lpad(d::text, 4, '0'), to_timestamp($1::float8 / 1000), to_timestamp($2::float8 / 1000) FROM generate_series(1, $3::int) d`,
    [start, now, DEVICES],
  );
  const fillMs = Date.now() - fillStarted;
  const vacuumStarted = Date.now();
  for (const table of ['samples', 'hourly_aggregates', 'devices']) await db.query(`VACUUM ANALYZE ${table}`);
  const [{ n }] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM samples`);
  log(
    `plans-10m: ${n} samples in ${partitions.length} partitions, filled in ${(fillMs / 1000).toFixed(1)} s (+ vacuum/analyze ${((Date.now() - vacuumStarted) / 1000).toFixed(1)} s)`,
  );

  // Capture the SQL the API runs, by running it.
  const captured: Array<{ label: string; sql: string; params: unknown[] }> = [];
  let label = '';
  const original = db.query.bind(db);
  db.query = (async (sql: string, params?: unknown[]) => {
    captured.push({ label, sql, params: params ?? [] });
    return original(sql, params);
  }) as typeof db.query;
  const queries = new TelemetryQueries(db);
  const device = 'dev-0007';
  const run = async (l: string, fn: () => Promise<unknown>) => {
    label = l;
    await fn();
  };
  try {
    await run('listDevices', () => queries.listDevices(100, 0));
    await run('findDevice', () => queries.findDevice(device));
    await run('latest', () => queries.latest(device));
    const row = await queries.findDevice(device);
    await run('stats', () => queries.stats(row!));
    await run('hourly(24h)', () => queries.hourly(device, 'm3', new Date(now - 24 * HOUR), new Date(now)));
    await run('hourly(all)', () => queries.hourly(device, 'm3', new Date(Date.UTC(2000, 0, 1)), new Date(now + 24 * HOUR)));
    await run('samples(metric, all time)', () => queries.samples(device, 'm2', new Date(Date.UTC(2000, 0, 1)), new Date(now + 24 * HOUR), 1000));
    await run('samples(all metrics, all time)', () => queries.samples(device, undefined, new Date(Date.UTC(2000, 0, 1)), new Date(now + 24 * HOUR), 1000));
    await run('samples(metric, 1h)', () => queries.samples(device, 'm2', new Date(now - 2 * HOUR), new Date(now - HOUR), 100));
    await run('samples(all metrics, 1h)', () => queries.samples(device, undefined, new Date(now - 2 * HOUR), new Date(now - HOUR), 10000));
    await run('samples(metric, 3 days ago, 6h)', () => queries.samples(device, 'm1', new Date(now - 3 * DAY_MS - 6 * HOUR), new Date(now - 3 * DAY_MS), 10000));
    await run('dashboard', () => queries.dashboard());
  } finally {
    db.query = original;
  }

  const partitionNames = new Set(partitions.map((p) => p.name));
  const plans = [];
  const seen = new Map<string, number>();
  for (const c of captured) {
    const k = (seen.get(c.label) ?? 0) + 1;
    seen.set(c.label, k);
    const many = captured.filter((x) => x.label === c.label).length > 1;
    // Once to warm the cache, then the measured run.
    await db.query(c.sql, c.params);
    const [row] = await db.query<{ 'QUERY PLAN': Explained[] }>(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${c.sql}`, c.params);
    const plan = row['QUERY PLAN'][0];
    const nodes = walk(plan.Plan);
    const partitionsOf = (list: PlanNode[]) => [
      ...new Set(list.map((x) => x['Relation Name']).filter((r): r is string => r !== undefined && partitionNames.has(r))),
    ];
    const planned = partitionsOf(nodes);
    // A node that never ran (Actual Loops 0) was pruned at run time or never reached (an ordered Append under a LIMIT).
    const touched = partitionsOf(nodes.filter((x) => (x['Actual Loops'] ?? 0) > 0));
    plans.push({
      query: many ? `${c.label}#${k}` : c.label,
      nodeTypes: [...new Set(nodes.map((x) => x['Node Type']))],
      relations: [...new Set(nodes.map((x) => x['Relation Name']).filter((r): r is string => r !== undefined && !partitionNames.has(r)))],
      samplesPartitionsPlanned: planned.length,
      samplesPartitionsTouched: touched.length,
      samplesPartitions: touched.length <= 4 ? touched : undefined,
      seqScans: [...new Set(nodes.filter((x) => /Seq Scan$/.test(x['Node Type'])).map((x) => x['Relation Name']))],
      sharedHitBlocks: plan.Plan['Shared Hit Blocks'] ?? 0,
      sharedReadBlocks: plan.Plan['Shared Read Blocks'] ?? 0,
      planningMs: Number(plan['Planning Time'].toFixed(3)),
      executionMs: Number(plan['Execution Time'].toFixed(3)),
    });
  }

  const [{ version }] = await db.query<{ version: string }>(`SELECT split_part(version(), ' on ', 1) AS version`);
  log(`plans-10m: ${version}; ${partitions.length} partitions of samples (catch-all + ${partitions.length - 1} days)`);
  for (const p of plans) {
    const parts = p.samplesPartitions ? ` [${p.samplesPartitions.join(', ')}]` : '';
    log(
      `  ${p.query.padEnd(36)} plan ${p.planningMs.toFixed(2).padStart(6)} ms  exec ${p.executionMs.toFixed(2).padStart(7)} ms  ` +
        `buffers ${String(p.sharedHitBlocks + p.sharedReadBlocks).padStart(6)}  partitions planned ${String(p.samplesPartitionsPlanned).padStart(2)} touched ${String(p.samplesPartitionsTouched).padStart(2)}${parts}` +
        `${p.seqScans.length ? `  SEQ SCAN ${p.seqScans.join(',')}` : ''}`,
    );
  }
  return {
    database,
    server: version,
    samples: n,
    devices: DEVICES,
    metricsPerDevice: METRICS,
    pointsPerSeries: POINTS,
    days: DAYS,
    partitions: partitions.length,
    fillSeconds: Number((fillMs / 1000).toFixed(1)),
    plans,
  };
}

main().catch((error: unknown) => {
  log(`plans-10m: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  process.exit(1);
});
