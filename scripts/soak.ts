// `npm run soak -- --minutes 30`: hours-of-traffic behaviour in one run. The
// BUILT service runs as its own process against real PostgreSQL (a fresh
// database), Redis and a private Mosquitto (project config); device
// publishers (bench-publisher.js) send QoS 1 at a steady rate, WebSocket
// clients (bench-ws-clients.js) subscribe to every device, and this process
// reads GET /api/devices/:id/latest steadily.
//
// Every interval (a minute by default) it prints the service's RSS, heap
// used, event-loop lag p99 and ingest lag p99 (from its /metrics), the
// WebSocket p99 seen by the clients and the HTTP read p99; at the end the
// lost and duplicated samples, and one JSON object on stdout.
//
// Targets: 0 lost, 0 duplicates, heap used after the warm-up (5 min) grows
// < 5 %, lag percentiles flat. Exit code 0 whatever the figures (the caller
// judges them); 1 if the run itself failed.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'pg';
import { ROOT, freePort, log, sleep, startMosquitto, stopProcess, waitUntil } from './bench-support';
import type { PublisherJob } from './publisher-job';

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    /** Messages per second (4 metrics each), over all devices. */
    rate: { type: 'string', default: '5000' },
    devices: { type: 'string', default: '10000' },
    'ws-clients': { type: 'string', default: '1000' },
    /** GET /api/devices/:id/latest per second. */
    reads: { type: 'string', default: '50' },
    publishers: { type: 'string', default: '2' },
    /** Seconds between report lines (60 = per minute). */
    'report-every': { type: 'string', default: '60' },
    /** Minutes excluded from the growth figures (start-up, caches filling, JIT). */
    'warmup-minutes': { type: 'string' },
    'database-url': { type: 'string', default: process.env.SOAK_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    'redis-url': { type: 'string', default: process.env.SOAK_REDIS_URL ?? 'redis://127.0.0.1:6379/3' },
    'app-node-flags': { type: 'string', default: '--max-old-space-size=512' },
  },
});
const minutes = Number(args.minutes);
const rate = Number(args.rate);
const devices = Number(args.devices);
const wsClients = Number(args['ws-clients']);
const readsPerSec = Number(args.reads);
const publishers = Number(args.publishers);
const reportEveryS = Number(args['report-every']);
const warmupMinutes = Number(args['warmup-minutes'] ?? Math.min(5, minutes / 2));
const METRICS_PER_MESSAGE = 4;
/**
 * Redis pub/sub ignores the database number: another service on the same
 * Redis (a bench, a test) fans its samples out on the same channel. Devices
 * of this run's own keep them apart (and out of the WebSocket figures).
 */
const DEVICE_PREFIX = `soak${process.pid}-`;
const MB = 1024 * 1024;

for (const [name, value] of Object.entries({ minutes, rate, devices, wsClients, readsPerSec, publishers, reportEveryS, warmupMinutes })) {
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: not a number`);
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** One sample of a Prometheus text exposition (unlabelled unless `labels` given, e.g. `le="0.5"`). */
function metric(text: string, name: string, labels = ''): number {
  const prefix = labels ? `${name}{${labels}} ` : `${name} `;
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(prefix.length).split(' ')[0]) : NaN;
}

/** A quantile of a histogram over the interval between two scrapes (upper bound of the bucket it falls in). */
function histogramQuantile(before: string, after: string, name: string, q: number): number {
  const buckets: Array<{ le: number; count: number }> = [];
  for (const line of after.split('\n')) {
    const match = new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)`).exec(line);
    if (!match) continue;
    const le = match[1] === '+Inf' ? Infinity : Number(match[1]);
    const previous = metric(before, `${name}_bucket`, `le="${match[1]}"`);
    buckets.push({ le, count: Number(match[2]) - (Number.isFinite(previous) ? previous : 0) });
  }
  const total = buckets.find((b) => b.le === Infinity)?.count ?? 0;
  if (total === 0) return NaN;
  return buckets.find((b) => b.count >= q * total)?.le ?? Infinity;
}

function startPublishers(url: string, total: number): Array<Promise<{ acked: number }>> {
  const perProcess = Math.ceil(total / publishers);
  const devicesEach = Math.ceil(devices / publishers);
  return Array.from({ length: publishers }, (_, i) => {
    const child = fork(join(__dirname, 'bench-publisher.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const job: PublisherJob = {
      url,
      count: Math.min(perProcess, total - i * perProcess),
      devices: devicesEach,
      deviceOffset: i * devicesEach,
      window: 2000,
      baseTs: 0,
      qos: 1,
      rate: rate / publishers,
      // Publish time as the sample time: unique per device (each device sends
      // every devices / rate seconds) and the WebSocket clients' latency clock.
      stampNow: true,
      devicePrefix: DEVICE_PREFIX,
    };
    child.send(job);
    return new Promise<{ acked: number }>((resolve, reject) => {
      child.once('message', (m) => resolve(m as { acked: number }));
      child.once('exit', (code) => code !== 0 && reject(new Error(`publisher exited ${code}`)));
    });
  });
}

interface WsClients {
  child: ChildProcess;
  report(): Promise<{ delivered: number; p99Ms: number; open: number }>;
}

async function startWsClients(url: string): Promise<WsClients> {
  const child = fork(join(__dirname, 'bench-ws-clients.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`ws clients exited ${code}`)));
    child.send({ job: { url, clients: wsClients, devices, devicePrefix: DEVICE_PREFIX } });
  });
  return {
    child,
    report: () =>
      new Promise((resolve) => {
        const onMessage = (m: { report?: { delivered: number; p99Ms: number; open: number } }) => {
          if (!m.report) return;
          child.off('message', onMessage);
          resolve(m.report);
        };
        child.on('message', onMessage);
        child.send({ report: true });
      }),
  };
}

/** Steady GET /api/devices/:id/latest at `readsPerSec`; latencies per interval. */
function startReads(baseUrl: string): { take(): { count: number; failed: number; p99Ms: number }; stop(): Promise<void> } {
  let latencies: number[] = [];
  let failed = 0;
  let running = true;
  let inFlight = 0;
  const loop = (async () => {
    const started = Date.now();
    let issued = 0;
    while (running) {
      const due = Math.floor(((Date.now() - started) / 1000) * readsPerSec);
      while (issued < due && inFlight < 50) {
        issued++;
        inFlight++;
        const id = `${DEVICE_PREFIX}${Math.floor(Math.random() * devices)}`;
        const t0 = performance.now();
        fetch(`${baseUrl}/api/devices/${id}/latest`)
          .then(async (res) => {
            await res.arrayBuffer();
            if (res.status !== 200 && res.status !== 404) failed++;
            latencies.push(performance.now() - t0);
          })
          .catch(() => failed++)
          .finally(() => inFlight--);
      }
      await sleep(20);
    }
  })();
  return {
    take: () => {
      const window = latencies.sort((a, b) => a - b);
      latencies = [];
      const f = failed;
      failed = 0;
      return { count: window.length, failed: f, p99Ms: window[Math.min(window.length - 1, Math.floor(0.99 * window.length))] ?? NaN };
    },
    stop: async () => {
      running = false;
      await loop;
      await waitUntil(async () => inFlight === 0, 10_000, 'reads to finish');
    },
  };
}

interface Row {
  minute: number;
  rssMb: number;
  heapUsedMb: number;
  eventLoopLagP99Ms: number;
  ingestLagP99Ms: number;
  wsP99Ms: number;
  wsDelivered: number;
  wsOpen: number;
  httpP99Ms: number;
  httpReads: number;
  httpFailed: number;
  pending: number;
  ingestedPerSec: number;
}

async function main(): Promise<void> {
  const admin = new Client({ connectionString: args['database-url'] });
  await admin.connect();
  const dbName = `th_soak_${randomBytes(3).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = args['database-url'].replace(/\/[^/]*$/, `/${dbName}`);
  const db = new Client({ connectionString: dbUrl });
  const mosquitto = await startMosquitto('soak');
  let app: ChildProcess | undefined;
  let ws: WsClients | undefined;
  let reads: ReturnType<typeof startReads> | undefined;
  try {
    const port = await freePort();
    const baseUrl = `http://127.0.0.1:${port}`;
    const flags = args['app-node-flags'].split(' ').filter(Boolean);
    app = spawn(process.execPath, [...flags, join(ROOT, 'dist', 'main.js')], {
      env: {
        ...process.env,
        PORT: String(port),
        DATABASE_URL: dbUrl,
        REDIS_URL: args['redis-url'],
        MQTT_URL: mosquitto.url,
        INSTANCE_ID: `soak-${process.pid}`,
        LOG_LEVEL: 'warn',
        // Every client is on 127.0.0.1: one bucket would limit them all.
        WS_RATE_LIMIT: '100000000',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const appProcess = app;
    await waitUntil(async () => (await fetch(`${baseUrl}/health`)).ok, 60_000, 'the service to be healthy');
    await db.connect();
    ws = await startWsClients(`ws://127.0.0.1:${port}/ws`);
    const total = Math.round(rate * minutes * 60);
    log(
      `soak: ${minutes} min, ${rate} msg/s (${total} messages) from ${devices} devices, ${wsClients} WebSocket clients, ${readsPerSec} reads/s; ${cpus().length} cores, node ${process.version}`,
    );
    const started = Date.now();
    const published = startPublishers(mosquitto.url, total);
    reads = startReads(baseUrl);

    const rows: Row[] = [];
    let previous = await (await fetch(`${baseUrl}/metrics`)).text();
    let previousAt = Date.now();
    log('minute  rss MB  heap MB  loop p99 ms  ingest p99 ms  ws p99 ms  http p99 ms  pending  ingest msg/s');
    const done = Promise.all(published);
    let finished = false;
    void done.then(
      () => (finished = true),
      () => (finished = true),
    );
    for (let i = 1; !finished || rows.length === 0; i++) {
      const due = started + i * reportEveryS * 1000;
      while (Date.now() < due && !finished) await sleep(Math.min(500, due - Date.now()));
      if (appProcess.exitCode !== null || appProcess.signalCode !== null) throw new Error('the service exited during the soak');
      const text = await (await fetch(`${baseUrl}/metrics`)).text();
      const now = Date.now();
      const wsReport = await ws.report();
      const http = reads.take();
      const row: Row = {
        minute: round((now - started) / 60_000, 2),
        rssMb: round(metric(text, 'process_resident_memory_bytes') / MB),
        heapUsedMb: round(metric(text, 'nodejs_heap_size_used_bytes') / MB),
        eventLoopLagP99Ms: round(metric(text, 'nodejs_eventloop_lag_p99_seconds') * 1000),
        ingestLagP99Ms: round(histogramQuantile(previous, text, 'telemetry_ingest_lag_seconds', 0.99) * 1000),
        wsP99Ms: wsReport.p99Ms,
        wsDelivered: wsReport.delivered,
        wsOpen: wsReport.open,
        httpP99Ms: round(http.p99Ms),
        httpReads: http.count,
        httpFailed: http.failed,
        pending: metric(text, 'telemetry_ingest_pending_messages'),
        ingestedPerSec: round(
          (metric(text, 'telemetry_samples_ingested_total') - metric(previous, 'telemetry_samples_ingested_total')) /
            METRICS_PER_MESSAGE /
            ((now - previousAt) / 1000),
          0,
        ),
      };
      rows.push(row);
      previous = text;
      previousAt = now;
      log(
        [row.minute, row.rssMb, row.heapUsedMb, row.eventLoopLagP99Ms, row.ingestLagP99Ms, row.wsP99Ms, row.httpP99Ms, row.pending, row.ingestedPerSec]
          .map((v, k) => String(v).padStart(k === 0 ? 6 : 9))
          .join(' '),
      );
    }
    const acked = (await done).reduce((n, r) => n + r.acked, 0);
    const publishSeconds = (Date.now() - started) / 1000;
    await reads.stop();

    // Everything acknowledged by the broker must end up stored exactly once.
    const expected = acked * METRICS_PER_MESSAGE;
    const count = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM samples')).rows[0].n;
    let stored = await count();
    let lastChange = Date.now();
    while (stored < expected && Date.now() - lastChange < 30_000) {
      await sleep(500);
      const now = await count();
      if (now !== stored) lastChange = Date.now();
      stored = now;
    }
    const [check] = (
      await db.query<{ distinct: number; rollup: number }>(
        `SELECT (SELECT count(DISTINCT (device_id, metric, ts))::int FROM samples) AS distinct,
                (SELECT coalesce(sum(count), 0)::int FROM hourly_parts) AS rollup`,
      )
    ).rows;
    const lost = Math.max(0, expected - check.distinct);
    // A sample stored twice would be counted twice by the rollups (samples are unique by key).
    const duplicates = Math.max(0, check.rollup - check.distinct) + Math.max(0, check.distinct - expected);

    const afterWarmup = rows.filter((r) => r.minute >= warmupMinutes);
    const span = afterWarmup.length >= 2 ? afterWarmup : rows;
    const first = span[0];
    const last = span[span.length - 1];
    // Heap used is a sawtooth (it drops at every collection), so single
    // scrapes say little: the growth compares the floors (lowest value, what
    // survives collection) of the first and last thirds after the warm-up.
    const third = Math.max(1, Math.floor(span.length / 3));
    const floor = (rows: Row[]) => Math.min(...rows.map((r) => r.heapUsedMb));
    const heapFloorFirst = floor(span.slice(0, third));
    const heapFloorLast = floor(span.slice(-third));
    const heapGrowthPercent = round(((heapFloorLast - heapFloorFirst) / heapFloorFirst) * 100);
    const summary = {
      config: { minutes, rate, devices, wsClients, readsPerSec, publishers, reportEveryS, warmupMinutes, cores: cpus().length, node: process.version },
      publishSeconds: round(publishSeconds),
      published: acked,
      expectedSamples: expected,
      storedSamples: check.distinct,
      lost,
      duplicates,
      heapUsedAfterWarmupMb: {
        first: first.heapUsedMb,
        last: last.heapUsedMb,
        max: Math.max(...span.map((r) => r.heapUsedMb)),
        floorFirstThird: heapFloorFirst,
        floorLastThird: heapFloorLast,
      },
      heapGrowthPercent,
      rssMb: { first: first.rssMb, last: last.rssMb, max: Math.max(...rows.map((r) => r.rssMb)) },
      maxPending: Math.max(...rows.map((r) => r.pending)),
      httpFailed: rows.reduce((n, r) => n + r.httpFailed, 0),
      targets: { lost: lost === 0, duplicates: duplicates === 0, heapGrowthUnder5Percent: heapGrowthPercent < 5 },
      rows,
    };
    log(
      `lost ${lost}, duplicates ${duplicates}; heap used after ${warmupMinutes} min (lowest of the first and last thirds): ${heapFloorFirst} → ${heapFloorLast} MB (${heapGrowthPercent} %)`,
    );
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } finally {
    await reads?.stop().catch(() => undefined);
    if (ws) await stopProcess(ws.child);
    await stopProcess(app);
    await db.end().catch(() => undefined);
    await mosquitto.stop();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await admin.end();
  }
}

main().catch((error: unknown) => {
  log(`soak failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
