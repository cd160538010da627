// `npm run bench`: measures the BUILT service as its own process against real
// PostgreSQL and a private Mosquitto (project config) on loopback, with device
// publishers in separate processes. Prints one JSON object on stdout and a
// readable summary on stderr.
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client } from 'pg';

const ROOT = join(__dirname, '..', '..');
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    messages: { type: 'string' },
    devices: { type: 'string', default: '1000' },
    publishers: { type: 'string', default: '2' },
    'database-url': { type: 'string', default: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test' },
  },
});
const totalMessages = Number(args.messages ?? (args.quick ? 60_000 : 200_000));
const deviceCount = Number(args.devices);
const publisherCount = Number(args.publishers);
const METRICS_PER_MESSAGE = 4;

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const accepting = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

async function startMosquitto(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'th-bench-mosquitto-'));
  const port = await freePort();
  const base = await readFile(join(ROOT, 'mosquitto', 'mosquitto.conf'), 'utf8');
  const config = base
    .replace(/^listener .*$/m, `listener ${port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`)
    .concat(process.getuid?.() === 0 ? '\nuser root\n' : '\n');
  await writeFile(join(dir, 'mosquitto.conf'), config);
  const child = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  await waitUntil(() => accepting(port), 10_000, 'mosquitto');
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function procCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
}
function procPeakRssMb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Math.round(Number(match[1]) / 1024) : 0;
}

async function main(): Promise<void> {
  const dbName = `th_bench_${randomBytes(3).toString('hex')}`;
  const admin = new Client({ connectionString: args['database-url'] });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = args['database-url'].replace(/\/[^/]*$/, `/${dbName}`);
  const db = new Client({ connectionString: dbUrl });
  const mosquitto = await startMosquitto();
  const port = await freePort();
  let app: ChildProcess | undefined;
  try {
    app = spawn(process.execPath, [join(ROOT, 'dist', 'main.js')], {
      env: { ...process.env, DATABASE_URL: dbUrl, MQTT_URL: mosquitto.url, PORT: String(port), INSTANCE_ID: 'bench', LOG_LEVEL: 'warn', MQTT_PORT: String(await freePort()) },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => null))?.ok === true, 30_000, 'app health');
    await db.connect();
    const pid = app.pid as number;

    const countRows = async () => Number((await db.query('SELECT count(*)::int AS n FROM samples')).rows[0].n);
    const expectedRows = totalMessages * METRICS_PER_MESSAGE;
    log(`ingest: ${totalMessages} QoS 1 messages × ${METRICS_PER_MESSAGE} metrics, ${deviceCount} devices, ${publisherCount} publisher processes`);

    const cpuStart = procCpuSeconds(pid);
    const started = Date.now();
    const perPublisher = Math.ceil(totalMessages / publisherCount);
    const publishers = Array.from({ length: publisherCount }, (_, i) => {
      const child = fork(join(__dirname, 'bench-publisher.js'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
      const count = Math.min(perPublisher, totalMessages - i * perPublisher);
      const devicesEach = Math.ceil(deviceCount / publisherCount);
      child.send({ url: mosquitto.url, count, devices: devicesEach, deviceOffset: i * devicesEach, window: 2000, baseTs: Date.now() - 3600_000, qos: 1 });
      return new Promise<{ acked: number; seconds: number }>((resolve, reject) => {
        child.once('message', (m) => resolve(m as { acked: number; seconds: number }));
        child.once('exit', (code) => code !== 0 && reject(new Error(`publisher exited ${code}`)));
      });
    });

    // Sample committed rows over time; the sustained rate is taken between 10 % and 90 %.
    const points: Array<{ t: number; rows: number }> = [];
    let rows = 0;
    while (rows < expectedRows && Date.now() - started < 600_000) {
      await new Promise((r) => setTimeout(r, 250));
      rows = await countRows();
      points.push({ t: Date.now(), rows });
    }
    const published = await Promise.all(publishers);
    const cpuSeconds = procCpuSeconds(pid) - cpuStart;
    const wall = (points[points.length - 1].t - started) / 1000;
    const p10 = points.find((p) => p.rows >= expectedRows * 0.1) ?? points[0];
    const p90 = points.find((p) => p.rows >= expectedRows * 0.9) ?? points[points.length - 1];
    const sustainedSamples = (p90.rows - p10.rows) / Math.max(0.001, (p90.t - p10.t) / 1000);
    await new Promise((r) => setTimeout(r, 1000));
    const finalRows = await countRows();
    const distinct = Number((await db.query('SELECT count(*)::int AS n FROM (SELECT DISTINCT device_id, metric, ts FROM samples) d')).rows[0].n);
    const result = {
      ingest: {
        messages: totalMessages,
        metricsPerMessage: METRICS_PER_MESSAGE,
        devices: deviceCount,
        publishers: publisherCount,
        qos: 1,
        sustainedMsgPerSec: Math.round(sustainedSamples / METRICS_PER_MESSAGE),
        sustainedSamplesPerSec: Math.round(sustainedSamples),
        wallSeconds: Math.round(wall * 100) / 100,
        publisherAcked: published.reduce((a, p) => a + p.acked, 0),
        committedRows: finalRows,
        lostRows: expectedRows - distinct,
        duplicateRows: finalRows - distinct,
        appCpuPercent: Math.round((cpuSeconds / wall) * 100),
        appPeakRssMb: procPeakRssMb(pid),
      },
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    log(`ingest: ${result.ingest.sustainedMsgPerSec} msg/s (${result.ingest.sustainedSamplesPerSec} samples/s) sustained, lost ${result.ingest.lostRows}, duplicates ${result.ingest.duplicateRows}, app CPU ${result.ingest.appCpuPercent} %, peak RSS ${result.ingest.appPeakRssMb} MB`);
  } finally {
    app?.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 1000));
    await db.end().catch(() => undefined);
    await mosquitto.stop();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((error: unknown) => {
  log(`bench failed: ${error instanceof Error ? error.stack : String(error)}`);
  process.exit(1);
});
