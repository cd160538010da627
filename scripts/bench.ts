// `npm run bench`: measures the BUILT service as its own process against real
// PostgreSQL and a private Mosquitto (project config) on loopback, with device
// publishers in separate processes. Prints one JSON object on stdout and a
// readable summary on stderr.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createServer as createHttpServer } from 'node:http';
import autocannon from 'autocannon';
import mqtt from 'mqtt';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'pg';
import WebSocket from 'ws';
import { ROOT, freePort, log, startMosquitto, stopProcess, waitUntil } from './bench-support';
import type { PublisherJob } from './publisher-job';
import { SWEEP_SQL } from '../src/status/device-status.store';

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    devices: { type: 'string', default: '1000' },
    publishers: { type: 'string', default: '2' },
    'database-url': { type: 'string', default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
    only: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    rounds: { type: 'string' },
    /** status phase: fleet size, DEVICE_OFFLINE_AFTER_S, and the share of devices that go silent at once. */
    'status-devices': { type: 'string', default: '100000' },
    'status-timeout': { type: 'string', default: '20' },
    'status-silent': { type: 'string', default: '0.1' },
    /** Node flags for the app process; the default is what `npm start` and the Dockerfile use. */
    'app-node-flags': { type: 'string', default: '--max-old-space-size=512' },
  },
});
const totalMessages = Number(args.messages ?? (args.quick ? 60_000 : 200_000));
const deviceCount = Number(args.devices);
const publisherCount = Number(args.publishers);
const METRICS_PER_MESSAGE = 4;
/** Ingest and bare alternate this many times, each in a fresh database; medians are reported (single runs vary by ±20 % here). */
const rounds = Number(args.rounds ?? (args.quick ? 1 : 3));
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/7';
const ALARM_RULES = 1000;
const ALARM_LATENCY_S = 15;

function procCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
}
function procStatusMb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Math.round(Number(match[1]) / 1024) : 0;
}
const procPeakRssMb = (pid: number) => procStatusMb(pid, 'VmHWM');
const procRssMb = (pid: number) => procStatusMb(pid, 'VmRSS');

/** Splits a load over publisher processes; resolves when every publish is acknowledged. */
function publish(
  job: Omit<PublisherJob, 'count' | 'devices' | 'deviceOffset'> & { total: number; devices: number },
  processes: number,
): Promise<Array<{ acked: number; seconds: number }>> {
  const perProcess = Math.ceil(job.total / processes);
  const devicesEach = Math.ceil(job.devices / processes);
  return Promise.all(
    Array.from({ length: processes }, (_, i) => {
      const child = fork(join(__dirname, 'bench-publisher.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      const count = Math.min(perProcess, job.total - i * perProcess);
      const { total: _total, ...rest } = job;
      child.send({ ...rest, count, devices: devicesEach, deviceOffset: i * devicesEach, rate: job.rate ? job.rate / processes : undefined });
      return new Promise<{ acked: number; seconds: number }>((resolve, reject) => {
        child.once('message', (m) => resolve(m as { acked: number; seconds: number }));
        child.once('exit', (code) => code !== 0 && reject(new Error(`publisher exited ${code}`)));
      });
    }),
  );
}

/** Polls committed rows; the sustained rate is taken between 10 % and 90 % of the expected rows. */
async function measureRows(count: () => Promise<number>, expected: number, started: number): Promise<{ perSec: number; wall: number }> {
  const points: Array<{ t: number; rows: number }> = [];
  let rows = 0;
  while (rows < expected && Date.now() - started < 600_000) {
    await new Promise((r) => setTimeout(r, 250));
    rows = await count();
    points.push({ t: Date.now(), rows });
  }
  const p10 = points.find((p) => p.rows >= expected * 0.1) ?? points[0];
  const p90 = points.find((p) => p.rows >= expected * 0.9) ?? points[points.length - 1];
  return {
    perSec: (p90.rows - p10.rows) / Math.max(0.001, (p90.t - p10.t) / 1000),
    wall: (points[points.length - 1].t - started) / 1000,
  };
}

function startApp(env: Record<string, string>, port: number): Promise<ChildProcess> {
  const profile = args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', join(ROOT, 'profiles')] : [];
  const flags = args['app-node-flags'].split(' ').filter(Boolean);
  const app = spawn(process.execPath, [...flags, ...profile, join(ROOT, 'dist', 'main.js')], {
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.ok === true, 30_000, 'app health').then(() => app);
}

const round = (n: number, digits = 0) => Math.round(n * 10 ** digits) / 10 ** digits;

async function ingestPhase(dbUrl: string, db: Client): Promise<Record<string, number>> {
  const mosquitto = await startMosquitto('bench');
  const port = await freePort();
  let app: ChildProcess | undefined;
  try {
    app = await startApp(
      { DATABASE_URL: dbUrl, MQTT_URL: mosquitto.url, INSTANCE_ID: 'bench', REDIS_URL: REDIS_URL, MQTT_PORT: String(await freePort()) },
      port,
    );
    const pid = app.pid as number;
    const expected = totalMessages * METRICS_PER_MESSAGE;
    log(`ingest (service): ${totalMessages} QoS 1 messages × ${METRICS_PER_MESSAGE} metrics, ${deviceCount} devices, ${publisherCount} publisher processes`);
    const cpuStart = procCpuSeconds(pid);
    const started = Date.now();
    const published = publish(
      { url: mosquitto.url, total: totalMessages, devices: deviceCount, window: 2000, baseTs: Date.now() - 3600_000, qos: 1 },
      publisherCount,
    );
    const count = async () => Number((await db.query('SELECT count(*)::int AS n FROM samples')).rows[0].n);
    const { perSec, wall } = await measureRows(count, expected, started);
    const acks = await published;
    const cpuSeconds = procCpuSeconds(pid) - cpuStart;
    const figures = await appFigures(port);
    await new Promise((r) => setTimeout(r, 1000));
    const finalRows = await count();
    const distinct = Number((await db.query('SELECT count(*)::int AS n FROM (SELECT DISTINCT device_id, metric, ts FROM samples) d')).rows[0].n);
    return {
      messages: totalMessages,
      sustainedMsgPerSec: round(perSec / METRICS_PER_MESSAGE),
      sustainedSamplesPerSec: round(perSec),
      wallSeconds: round(wall, 2),
      publisherAcked: acks.reduce((a, p) => a + p.acked, 0),
      committedRows: finalRows,
      lostRows: expected - distinct,
      duplicateRows: finalRows - distinct,
      appCpuPercent: round((cpuSeconds / wall) * 100),
      appPeakRssMb: procPeakRssMb(pid),
      ...figures,
    };
  } finally {
    await stopProcess(app);
    await mosquitto.stop();
  }
}

/**
 * Ingest with alarm rules: ALARM_RULES rules, rule i watching the temperature
 * of device bench-i (a raise for the devices whose value is above 22, sent to
 * a local webhook receiver), then the same load as the ingest phase. The
 * figure to compare with the bare pipeline is sustainedMsgPerSec.
 * webhookP99Ms is outbox row → receiver for every event, dominated by the
 * burst of first raises at the start (about 580 at once). Then the latency of
 * a raise at a steady 5,000 msg/s: a probe publishes every 100 ms, stamped
 * with the wall clock, to one of 10 probe devices watched by one more rule,
 * values alternating so every other sample of a device raises. probeP99Ms is
 * publish → webhook received (ingest included: an upper bound of commit →
 * webhook), split into publish → outbox row (ingest + evaluation) and outbox
 * row → receiver (the sender).
 */
async function alarmsPhase(dbUrl: string, db: Client): Promise<Record<string, number>> {
  const ruleCount = Math.min(ALARM_RULES, deviceCount);
  const mosquitto = await startMosquitto('bench');
  const port = await freePort();
  const arrivals = new Map<string, number>();
  const probeLatencies: number[] = [];
  const receiver = createHttpServer((req, res) => {
    const at = Date.now();
    arrivals.set(String(req.headers['x-telemetry-event-id']), at);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.end();
      const event = JSON.parse(Buffer.concat(chunks).toString()) as { type: string; alarm: { metric: string; raisedAt: string } };
      if (event.type === 'alarm.raised' && event.alarm.metric === 'probe') probeLatencies.push(at - Date.parse(event.alarm.raisedAt));
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', () => resolve()));
  const hookPort = (receiver.address() as { port: number }).port;
  let app: ChildProcess | undefined;
  try {
    app = await startApp(
      {
        DATABASE_URL: dbUrl,
        MQTT_URL: mosquitto.url,
        INSTANCE_ID: 'bench-alarms',
        REDIS_URL: REDIS_URL,
        MQTT_PORT: String(await freePort()),
        ADMIN_API_KEY: 'bench',
      },
      port,
    );
    for (let i = 0; i < ruleCount; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/api/alarm-rules`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'bench' },
        body: JSON.stringify({
          name: `bench ${i}`,
          metric: 'temperature',
          devices: [`bench-${i}`],
          condition: { op: '>', value: 22 },
          forS: 0,
          clear: { hysteresis: 0.5, forS: 0 },
          severity: 'minor',
          webhookUrl: `http://127.0.0.1:${hookPort}/hook`,
        }),
      });
      if (res.status !== 201) throw new Error(`creating alarm rule ${i}: HTTP ${res.status} ${await res.text()}`);
    }
    const probeRule = await fetch(`http://127.0.0.1:${port}/api/alarm-rules`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'bench' },
      body: JSON.stringify({
        name: 'probe',
        metric: 'probe',
        devices: '*',
        condition: { op: '>', value: 0 },
        severity: 'warning',
        webhookUrl: `http://127.0.0.1:${hookPort}/hook`,
      }),
    });
    if (probeRule.status !== 201) throw new Error(`creating the probe rule: HTTP ${probeRule.status}`);
    const pid = app.pid as number;
    const expected = totalMessages * METRICS_PER_MESSAGE;
    log(`ingest with alarms: ${ruleCount} rules over ${deviceCount} devices, ${totalMessages} QoS 1 messages × ${METRICS_PER_MESSAGE} metrics`);
    const cpuStart = procCpuSeconds(pid);
    const started = Date.now();
    const published = publish(
      { url: mosquitto.url, total: totalMessages, devices: deviceCount, window: 2000, baseTs: Date.now() - 3600_000, qos: 1 },
      publisherCount,
    );
    const count = async () => Number((await db.query(`SELECT count(*)::int AS n FROM samples WHERE metric <> 'probe'`)).rows[0].n);
    const { perSec, wall } = await measureRows(count, expected, started);
    await published;
    const cpuSeconds = procCpuSeconds(pid) - cpuStart;
    await new Promise((r) => setTimeout(r, 3000));
    const burstEvents = arrivals.size;

    // Latency at a steady rate below saturation (as the WebSocket phase does),
    // so the figure is the alarm path's and not the ingest backlog's.
    const rate = args.quick ? 2000 : 5000;
    log(`alarm latency: ${rate} msg/s for ${ALARM_LATENCY_S} s over ${deviceCount} devices, plus 10 probe raises/s`);
    const probe = await mqtt.connectAsync(mosquitto.url, { protocolVersion: 4, clean: true });
    let probes = 0;
    const probeTimer = setInterval(() => {
      const n = probes++;
      probe.publish(`devices/probe-${n % 10}/telemetry`, JSON.stringify({ ts: Date.now(), metrics: { probe: Math.floor(n / 10) % 2 === 0 ? 1 : -1 } }), {
        qos: 1,
      });
    }, 100);
    await publish(
      { url: mosquitto.url, total: rate * ALARM_LATENCY_S, devices: deviceCount, window: 5000, baseTs: 0, qos: 1, rate, stampNow: true },
      publisherCount,
    );
    clearInterval(probeTimer);
    await probe.endAsync();
    await new Promise((r) => setTimeout(r, 2000));
    probeLatencies.sort((a, b) => a - b);
    const probePct = (q: number) => (probeLatencies.length ? probeLatencies[Math.min(probeLatencies.length - 1, Math.floor(q * probeLatencies.length))] : NaN);
    const outbox = (await db.query<{ id: string; created: string }>(`SELECT id, (extract(epoch FROM created_at) * 1000)::float8 AS created FROM alarm_outbox`))
      .rows;
    const latencies = outbox
      .filter((r) => arrivals.has(r.id))
      .map((r) => (arrivals.get(r.id) as number) - Number(r.created))
      .sort((a, b) => a - b);
    const pct = (q: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : NaN);
    const alarms = Number((await db.query('SELECT count(*)::int AS n FROM alarms')).rows[0].n);
    // Where a probe raise's time goes: publish → evaluation (outbox row), outbox row → receiver.
    const probeRows = (
      await db.query<{ id: string; created: number; raised: number }>(
        `SELECT id, (extract(epoch FROM created_at) * 1000)::float8 AS created, (extract(epoch FROM (body::jsonb -> 'alarm' ->> 'raisedAt')::timestamptz) * 1000)::float8 AS raised
           FROM alarm_outbox WHERE body::jsonb ->> 'type' = 'alarm.raised' AND body::jsonb -> 'alarm' ->> 'metric' = 'probe'`,
      )
    ).rows;
    const p99 = (values: number[]) => (values.length ? values.sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(0.99 * values.length))] : NaN);
    const toOutbox = p99(probeRows.map((r) => Number(r.created) - Number(r.raised)));
    const toReceiver = p99(probeRows.filter((r) => arrivals.has(r.id)).map((r) => (arrivals.get(r.id) as number) - Number(r.created)));
    return {
      rules: ruleCount,
      sustainedMsgPerSec: round(perSec / METRICS_PER_MESSAGE),
      sustainedSamplesPerSec: round(perSec),
      wallSeconds: round(wall, 2),
      appCpuPercent: round((cpuSeconds / wall) * 100),
      alarmsRaised: alarms,
      webhooksQueued: outbox.length,
      webhooksReceived: arrivals.size,
      burstWebhooks: burstEvents,
      webhookP50Ms: round(pct(0.5)),
      webhookP99Ms: round(pct(0.99)),
      probeRaises: probeLatencies.length,
      probeP50Ms: round(probePct(0.5)),
      probeP99Ms: round(probePct(0.99)),
      probePublishToOutboxP99Ms: round(toOutbox),
      probeOutboxToWebhookP99Ms: round(toReceiver),
    };
  } finally {
    await stopProcess(app);
    receiver.close();
    await mosquitto.stop();
  }
}

async function barePhase(dbUrl: string, db: Client): Promise<Record<string, number>> {
  const mosquitto = await startMosquitto('bench');
  const bare = fork(join(__dirname, 'bare-pipeline.js'), [mosquitto.url, dbUrl], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    await new Promise((resolve) => bare.once('message', resolve));
    const pid = bare.pid as number;
    log(`ingest (bare pipeline): same load`);
    const expected = totalMessages * METRICS_PER_MESSAGE;
    const cpuStart = procCpuSeconds(pid);
    const started = Date.now();
    const published = publish(
      { url: mosquitto.url, total: totalMessages, devices: deviceCount, window: 2000, baseTs: Date.now() - 7200_000, qos: 1 },
      publisherCount,
    );
    const count = async () => Number((await db.query('SELECT count(*)::int AS n FROM bare_samples')).rows[0].n);
    const { perSec, wall } = await measureRows(count, expected, started);
    await published;
    return {
      sustainedMsgPerSec: round(perSec / METRICS_PER_MESSAGE),
      sustainedSamplesPerSec: round(perSec),
      cpuPercent: round(((procCpuSeconds(pid) - cpuStart) / wall) * 100),
    };
  } finally {
    await stopProcess(bare);
    await mosquitto.stop();
  }
}

/**
 * Where the app's memory and latency go, from its own /metrics: heap figures,
 * the share of messages whose receive → commit took over 50 ms, and the
 * major-GC pauses (the candidates for the delivery tail).
 */
async function appFigures(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const value = (series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line ? Number(line.slice(series.length + 1)) : NaN;
  };
  const mb = (name: string) => round(value(name) / 1048576);
  const lagCount = value('telemetry_ingest_lag_seconds_count');
  return {
    appHeapUsedMb: mb('nodejs_heap_size_used_bytes'),
    appHeapTotalMb: mb('nodejs_heap_size_total_bytes'),
    appExternalMb: mb('nodejs_external_memory_bytes'),
    commitOver50msShare: round(1 - value('telemetry_ingest_lag_seconds_bucket{le="0.05"}') / lagCount, 4),
    commitOver100msShare: round(1 - value('telemetry_ingest_lag_seconds_bucket{le="0.1"}') / lagCount, 4),
    flushes: value('telemetry_ingest_flush_seconds_count'),
    flushOver25msShare: round(1 - value('telemetry_ingest_flush_seconds_bucket{le="0.025"}') / value('telemetry_ingest_flush_seconds_count'), 4),
    flushOver50msShare: round(1 - value('telemetry_ingest_flush_seconds_bucket{le="0.05"}') / value('telemetry_ingest_flush_seconds_count'), 4),
    eventLoopLagP99Ms: round(value('nodejs_eventloop_lag_p99_seconds') * 1000, 1),
    eventLoopLagMaxMs: round(value('nodejs_eventloop_lag_max_seconds') * 1000, 1),
    majorGcCount: value('nodejs_gc_duration_seconds_count{kind="major"}'),
    majorGcSeconds: round(value('nodejs_gc_duration_seconds_sum{kind="major"}'), 3),
  };
}

interface WsLoad {
  label: string;
  devices: number;
  clients: number;
  rate: number;
  seconds: number;
}

/**
 * publish → WebSocket delivery latency at a steady rate, with the clients in
 * their own process each watching its share of the devices; also the app's
 * resident memory with that many devices and sockets.
 */
async function wsPhase(dbUrl: string, load: WsLoad): Promise<Record<string, number>> {
  const mosquitto = await startMosquitto('bench');
  const port = await freePort();
  let app: ChildProcess | undefined;
  const clients = fork(join(__dirname, 'bench-ws-clients.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    app = await startApp(
      {
        DATABASE_URL: dbUrl,
        MQTT_URL: mosquitto.url,
        INSTANCE_ID: 'bench-ws',
        REDIS_URL: REDIS_URL,
        MQTT_PORT: String(await freePort()),
        WS_RATE_LIMIT: '1000000',
      },
      port,
    );
    clients.send({ job: { url: `ws://127.0.0.1:${port}/ws`, clients: load.clients, devices: load.devices } });
    await new Promise((resolve) => clients.once('message', resolve));
    await new Promise((r) => setTimeout(r, 1000));
    log(`${load.label}: ${load.rate} msg/s for ${load.seconds} s over ${load.devices} devices, ${load.clients} WebSocket clients in a separate process`);
    await publish(
      { url: mosquitto.url, total: load.rate * load.seconds, devices: load.devices, window: 5000, baseTs: 0, qos: 1, rate: load.rate, stampNow: true },
      publisherCount,
    );
    await new Promise((r) => setTimeout(r, 2000));
    const rssAtEndMb = procRssMb(app.pid as number);
    const figures = await appFigures(port);
    clients.send({ stop: true });
    const stats = (await new Promise((resolve) => clients.once('message', resolve))) as { delivered: number; p50Ms: number; p99Ms: number; maxMs: number };
    return {
      rateMsgPerSec: load.rate,
      devices: load.devices,
      clients: load.clients,
      ...stats,
      appRssAtEndMb: rssAtEndMb,
      appPeakRssMb: procPeakRssMb(app.pid as number),
      ...figures,
    };
  } finally {
    if (clients.exitCode === null) clients.kill('SIGKILL');
    await stopProcess(app);
    await mosquitto.stop();
  }
}

async function load(url: string, paths: string[]): Promise<{ reqPerSec: number; p99Ms: number; non2xx: number }> {
  // A static request list (each connection cycles through it): about 1.6 x
  // cheaper for the generator than a setupRequest callback, so on two shared
  // cores the generator saturates later and the ratio is the service's own.
  const result = await autocannon({
    url,
    connections: 50,
    pipelining: 1,
    duration: args.quick ? 5 : 10,
    requests: paths.map((path) => ({ method: 'GET' as const, path })),
  });
  return { reqPerSec: round(result.requests.average), p99Ms: result.latency.p99, non2xx: result.non2xx };
}

/** Cached GET /api/devices/:id/latest over all devices vs a bare node:http server answering similar JSON. */
async function httpPhase(dbUrl: string, db: Client): Promise<Record<string, number>> {
  const port = await freePort();
  let app: ChildProcess | undefined;
  const bare = createHttpServer((req, res) => {
    const id = (req.url ?? '').split('/')[3] ?? 'x';
    const body = JSON.stringify({ deviceId: id, ts: new Date().toISOString(), metrics: { temperature: 21.5, humidity: 40, pressure: 1000, battery: 0.5 } });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  const paths = Array.from({ length: deviceCount }, (_, d) => `/api/devices/bench-${d}/latest`);
  /** The app with extra settings (none: the defaults a user runs with), warmed and checked. */
  const serve = async (env: Record<string, string> = {}) => {
    await stopProcess(app);
    app = await startApp(
      {
        DATABASE_URL: dbUrl,
        INSTANCE_ID: 'bench-http',
        REDIS_URL: REDIS_URL,
        MQTT_PORT: String(await freePort()),
        ...env,
      },
      port,
    );
    for (const path of paths) await fetch(`http://127.0.0.1:${port}${path}`).then((r) => r.text()); // warm the cache
    const probe = (await (await fetch(`http://127.0.0.1:${port}${paths[1]}`)).json()) as { deviceId?: string; metrics?: Record<string, number> };
    if (probe.deviceId !== 'bench-1' || Object.keys(probe.metrics ?? {}).length !== 4) throw new Error(`latest answered ${JSON.stringify(probe)}`);
    return load(`http://127.0.0.1:${port}`, paths);
  };
  try {
    app = await startApp({ DATABASE_URL: dbUrl, INSTANCE_ID: 'bench-http', REDIS_URL: REDIS_URL, MQTT_PORT: String(await freePort()) }, port);
    // The phase has a database of its own: give every device a stored sample (and its rollup and device row, as the write path would).
    await db.query(
      `WITH s AS (
         INSERT INTO samples (device_id, metric, ts, value)
         SELECT 'bench-' || d, m, date_trunc('second', now()) - interval '1 minute', d % 100
         FROM generate_series(0, $1::int - 1) d, unnest(ARRAY['battery', 'humidity', 'pressure', 'temperature']) m
         RETURNING device_id, metric, ts, value),
       r AS (
         INSERT INTO hourly_aggregates (device_id, metric, bucket, count, sum, min, max)
         SELECT device_id, metric, date_trunc('hour', ts, 'UTC'), 1, value, value, value FROM s)
       INSERT INTO devices (id, first_seen, last_seen) SELECT DISTINCT device_id, ts, ts FROM s`,
      [deviceCount],
    );
    const barePort = await freePort();
    await new Promise<void>((resolve) => bare.listen(barePort, '127.0.0.1', resolve));
    log(
      `HTTP: GET latest over ${deviceCount} devices, 50 connections, static request list; default settings, a 1 h latest TTL, the HTTP rate limit on (a bucket no client empties), then bare node:http`,
    );
    const served = await serve();
    const longTtl = await serve({ CACHE_TTL_LATEST_S: '3600' });
    // The limit's own cost: every request takes a token from the shared Redis bucket.
    const limited = await serve({ HTTP_RATE_LIMIT: '1000000000', HTTP_RATE_WINDOW_S: '1' });
    const baseline = await load(`http://127.0.0.1:${barePort}`, paths);
    return {
      appReqPerSec: served.reqPerSec,
      appP99Ms: served.p99Ms,
      appNon2xx: served.non2xx,
      longTtlReqPerSec: longTtl.reqPerSec,
      longTtlP99Ms: longTtl.p99Ms,
      bareReqPerSec: baseline.reqPerSec,
      bareP99Ms: baseline.p99Ms,
      ratioToBare: round(served.reqPerSec / baseline.reqPerSec, 2),
      longTtlRatioToBare: round(longTtl.reqPerSec / baseline.reqPerSec, 2),
      rateLimitedReqPerSec: limited.reqPerSec,
      rateLimitedP99Ms: limited.p99Ms,
      rateLimitedNon2xx: limited.non2xx,
      rateLimitedRatioToBare: round(limited.reqPerSec / baseline.reqPerSec, 2),
    };
  } finally {
    bare.close();
    await stopProcess(app);
  }
}

/**
 * Device status at fleet scale: N devices online (rows written as the batch
 * write would), a share of them goes silent at once while the rest keep
 * reporting (their last_seen refreshed every 5 s, as ingestion would); how
 * long after its deadline (last_seen + timeout) each silent device's offline
 * `status` event reaches a WebSocket client, and what the sweep costs: the
 * app's CPU while nothing is due and one sweep statement's execution time in
 * PostgreSQL.
 */
async function statusPhase(dbUrl: string, db: Client): Promise<Record<string, number>> {
  const devices = Number(args['status-devices']);
  const timeoutS = Number(args['status-timeout']);
  const silentCount = Math.round(devices * Number(args['status-silent']));
  const port = await freePort();
  let app: ChildProcess | undefined;
  let ws: WebSocket | undefined;
  let keepAlive: NodeJS.Timeout | undefined;
  try {
    app = await startApp(
      { DATABASE_URL: dbUrl, INSTANCE_ID: 'bench-status', REDIS_URL: REDIS_URL, MQTT_PORT: String(await freePort()), DEVICE_OFFLINE_AFTER_S: String(timeoutS) },
      port,
    );
    // Device ids: the silent ones first, so "id < silent boundary" picks them.
    const width = String(devices).length;
    const id = (i: number) => `bst-${String(i).padStart(width, '0')}`;
    const boundary = id(silentCount);
    await db.query(
      `INSERT INTO devices (id, first_seen, last_seen, status, status_since, status_reason)
       SELECT 'bst-' || lpad(i::text, $2::int, '0'), now(), now(), 'online', now(), 'message' FROM generate_series(0, $1::int - 1) i`,
      [devices, width],
    );
    await db.query('ANALYZE devices');
    // Every device reports until the silent ones stop; then only the others.
    let silenceStarted = false;
    const refresh = () => db.query(`UPDATE devices SET last_seen = now() WHERE id >= $1`, [silenceStarted ? boundary : '']);
    keepAlive = setInterval(() => void refresh().catch(() => undefined), Math.min(5000, (timeoutS * 1000) / 3));
    const offline = new Map<string, number>();
    ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const socket = ws;
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { event: string; data: { deviceId: string; status: string } };
      if (frame.event === 'status' && frame.data.status === 'offline') {
        if (offline.has(frame.data.deviceId)) offline.set(`${frame.data.deviceId}#dup${offline.size}`, NaN);
        else offline.set(frame.data.deviceId, Date.now());
      }
    });
    socket.send(JSON.stringify({ event: 'subscribe', data: { deviceId: '*' } }));
    // Steady state: nothing due, the owner sweeps twice a second.
    await new Promise((r) => setTimeout(r, 2000));
    const idleSeconds = 10;
    const cpu0 = procCpuSeconds(app.pid as number);
    await new Promise((r) => setTimeout(r, idleSeconds * 1000));
    const idleCpuPercent = round(((procCpuSeconds(app.pid as number) - cpu0) / idleSeconds) * 100, 2);
    await db.query('BEGIN');
    const plan = (await db.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${SWEEP_SQL}`, [timeoutS, 5000])).rows as Array<{
      'QUERY PLAN': Array<{ 'Execution Time': number }>;
    }>;
    await db.query('ROLLBACK');
    const sweepIdleMs = round(plan[0]['QUERY PLAN'][0]['Execution Time'], 3);

    log(`status: ${devices} devices, ${silentCount} go silent at once, DEVICE_OFFLINE_AFTER_S=${timeoutS}`);
    silenceStarted = true;
    const [last] = (
      await db.query<{ t: Date }>(`WITH u AS (UPDATE devices SET last_seen = now() WHERE id < $1 RETURNING last_seen) SELECT max(last_seen) AS t FROM u`, [
        boundary,
      ])
    ).rows;
    const deadline = last.t.getTime() + timeoutS * 1000;
    const cpu1 = procCpuSeconds(app.pid as number);
    await waitUntil(async () => offline.size >= silentCount, (timeoutS + 60) * 1000, `${silentCount} offline events`);
    const detectCpuSeconds = procCpuSeconds(app.pid as number) - cpu1;
    await new Promise((r) => setTimeout(r, 3000)); // duplicates or stray offlines would show up here
    const delays = [...offline.entries()]
      .filter(([k]) => !k.includes('#'))
      .map(([, t]) => t - deadline)
      .sort((a, b) => a - b);
    const pct = (p: number) => delays[Math.min(delays.length - 1, Math.floor((p / 100) * delays.length))];
    const [{ n: wrong }] = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM devices WHERE (id < $1) <> (status = 'offline')`, [boundary])).rows;
    return {
      devices,
      silent: silentCount,
      timeoutS,
      offlineEvents: offline.size,
      duplicateEvents: [...offline.keys()].filter((k) => k.includes('#')).length,
      wrongStatus: wrong,
      delayP50Ms: pct(50),
      delayP99Ms: pct(99),
      delayMaxMs: delays[delays.length - 1],
      delayMinMs: delays[0],
      idleAppCpuPercent: idleCpuPercent,
      sweepIdleStatementMs: sweepIdleMs,
      detectionAppCpuSeconds: round(detectCpuSeconds, 2),
    };
  } finally {
    clearInterval(keepAlive);
    ws?.close();
    await stopProcess(app);
  }
}

/** Runs `fn` against a fresh database that is dropped afterwards. */
async function withDatabase<T>(admin: Client, fn: (url: string, db: Client) => Promise<T>): Promise<T> {
  // The throughput phases write gigabytes of WAL; without a checkpoint here the
  // next phase runs inside the checkpoint they triggered (measured: WebSocket
  // p99 68–128 ms right after the ingest rounds, 30–52 ms without them).
  await admin.query('CHECKPOINT').catch((error: unknown) => log(`CHECKPOINT not allowed (${String(error)}); phases may overlap a checkpoint`));
  const name = `th_bench_${randomBytes(3).toString('hex')}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = args['database-url'].replace(/\/[^/]*$/, `/${name}`);
  const db = new Client({ connectionString: url });
  try {
    await db.connect();
    return await fn(url, db);
  } finally {
    await db.end().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
}

function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main(): Promise<void> {
  const admin = new Client({ connectionString: args['database-url'] });
  await admin.connect();
  const want = (phase: string) => !args.only || args.only.split(',').includes(phase);
  const result: Record<string, unknown> = { machine: { cores: cpus().length, node: process.version, rounds } };
  try {
    const ingestRuns: Array<Record<string, number>> = [];
    const bareRuns: Array<Record<string, number>> = [];
    for (let round = 1; round <= rounds && (want('ingest') || want('bare')); round++) {
      if (rounds > 1) log(`round ${round} of ${rounds}`);
      if (want('ingest')) ingestRuns.push(await withDatabase(admin, ingestPhase));
      if (want('bare')) bareRuns.push(await withDatabase(admin, barePhase));
    }
    const ingestMsg = median(ingestRuns.map((r) => r.sustainedMsgPerSec));
    const bareMsg = median(bareRuns.map((r) => r.sustainedMsgPerSec));
    if (ingestRuns.length > 0) {
      const ingest = {
        messages: totalMessages,
        medianMsgPerSec: ingestMsg,
        medianSamplesPerSec: ingestMsg * METRICS_PER_MESSAGE,
        ratioToBare: round(ingestMsg / bareMsg, 2),
        lostRows: Math.max(...ingestRuns.map((r) => r.lostRows)),
        duplicateRows: Math.max(...ingestRuns.map((r) => r.duplicateRows)),
        appCpuPercent: median(ingestRuns.map((r) => r.appCpuPercent)),
        appPeakRssMb: Math.max(...ingestRuns.map((r) => r.appPeakRssMb)),
        runs: ingestRuns,
      };
      result.ingest = ingest;
      log(
        `ingest: ${ingestMsg} msg/s (${ingest.medianSamplesPerSec} samples/s, median of ${ingestRuns.length}: ${ingestRuns.map((r) => r.sustainedMsgPerSec).join(', ')}); lost ${ingest.lostRows}, duplicates ${ingest.duplicateRows}; app CPU ${ingest.appCpuPercent} %, peak RSS ${ingest.appPeakRssMb} MB`,
      );
    }
    if (bareRuns.length > 0) {
      result.bare = { medianMsgPerSec: bareMsg, runs: bareRuns };
      log(
        `bare pipeline: ${bareMsg} msg/s (median of ${bareRuns.length}: ${bareRuns.map((r) => r.sustainedMsgPerSec).join(', ')}); service / bare = ${round(ingestMsg / bareMsg, 2)}`,
      );
    }
    // Compare with the ingest and bare phases of the same run (`--only ingest,bare,alarms`).
    if (want('alarms')) {
      const runs: Array<Record<string, number>> = [];
      for (let round = 1; round <= rounds; round++) runs.push(await withDatabase(admin, alarmsPhase));
      const msg = median(runs.map((r) => r.sustainedMsgPerSec));
      result.alarms = { medianMsgPerSec: msg, ratioToBare: round(msg / bareMsg, 2), ratioToIngest: round(msg / ingestMsg, 2), runs };
      log(
        `ingest with ${runs[0].rules} alarm rules: ${msg} msg/s (median of ${runs.length}); / bare = ${round(msg / bareMsg, 2)}, / ingest = ${round(msg / ingestMsg, 2)}; webhooks p50 ${runs[0].webhookP50Ms} ms, p99 ${runs[0].webhookP99Ms} ms (${runs[0].webhooksReceived} of ${runs[0].webhooksQueued}); probe raise publish → webhook p50 ${runs[0].probeP50Ms} ms, p99 ${runs[0].probeP99Ms} ms (${runs[0].probeRaises}; p99 publish → outbox ${runs[0].probePublishToOutboxP99Ms} ms, outbox → webhook ${runs[0].probeOutboxToWebhookP99Ms} ms)`,
      );
    }
    if (want('ws')) {
      const ws = await withDatabase(admin, (url) =>
        wsPhase(url, { label: 'WebSocket latency', devices: deviceCount, clients: 100, rate: args.quick ? 2000 : 5000, seconds: args.quick ? 10 : 20 }),
      );
      result.websocket = ws;
      log(
        `websocket: p50 ${ws.p50Ms} ms, p99 ${ws.p99Ms} ms, max ${ws.maxMs} ms at ${ws.rateMsgPerSec} msg/s, ${ws.clients} clients (${ws.delivered} delivered)`,
      );
    }
    if (want('footprint')) {
      const fp = await withDatabase(admin, (url) =>
        wsPhase(url, { label: 'footprint', devices: 10_000, clients: 1000, rate: args.quick ? 2000 : 5000, seconds: args.quick ? 10 : 30 }),
      );
      result.footprint = fp;
      log(
        `footprint: 10,000 devices, 1,000 clients at ${fp.rateMsgPerSec} msg/s: app RSS ${fp.appRssAtEndMb} MB at the end, peak ${fp.appPeakRssMb} MB; p50 ${fp.p50Ms} ms, p99 ${fp.p99Ms} ms (${fp.delivered} delivered)`,
      );
    }
    if (want('http')) {
      const http = await withDatabase(admin, httpPhase);
      result.http = http;
      log(
        `http latest: ${http.appReqPerSec} req/s p99 ${http.appP99Ms} ms with default TTLs (${http.ratioToBare} x bare), ${http.longTtlReqPerSec} req/s p99 ${http.longTtlP99Ms} ms with a 1 h TTL (${http.longTtlRatioToBare} x), ${http.rateLimitedReqPerSec} req/s p99 ${http.rateLimitedP99Ms} ms with HTTP_RATE_LIMIT on (${http.rateLimitedRatioToBare} x); bare node:http ${http.bareReqPerSec} req/s`,
      );
    }
    if (want('status')) {
      const status = await withDatabase(admin, statusPhase);
      result.status = status;
      log(
        `status: ${status.silent} of ${status.devices} silent at once: offline announced p50 ${status.delayP50Ms} ms, p99 ${status.delayP99Ms} ms, max ${status.delayMaxMs} ms after the deadline; ${status.duplicateEvents} duplicates, ${status.wrongStatus} wrong; app CPU ${status.idleAppCpuPercent} % while nothing is due, sweep statement ${status.sweepIdleStatementMs} ms; ${status.detectionAppCpuSeconds} CPU s to turn them offline and announce them`,
      );
    }
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await admin.end();
  }
}

main().catch((error: unknown) => {
  log(`bench failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
