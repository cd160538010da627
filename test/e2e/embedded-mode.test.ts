// Embedded mode end to end (docs/api.md Configuration, Ingestion, HTTP API /health and /metrics, §6):
// no DATABASE_URL and no MQTT_URL, so devices talk to the in-process broker
// and rows land in the embedded PostgreSQL (PGlite) under DATA_DIR.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../../src/broker/embedded-broker';
import { DatabaseService } from '../../src/storage/database.service';
import { waitFor } from '../support/free-port';
import { connectDevice, telemetryTopic } from '../support/publisher';
import { startTestApp, type TestApp } from '../support/test-app';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('timing');

// docs/api.md Metrics, the ingestion part (cache, WebSocket and HTTP metrics belong to other modules).
const INGESTION_METRICS: Array<[string, 'counter' | 'histogram']> = [
  ['telemetry_messages_received_total', 'counter'],
  ['telemetry_messages_rejected_total', 'counter'],
  ['telemetry_samples_ingested_total', 'counter'],
  ['telemetry_ingest_batch_size', 'histogram'],
  ['telemetry_ingest_flush_seconds', 'histogram'],
  ['telemetry_ingest_lag_seconds', 'histogram'],
];
const REJECT_REASONS = ['bad_topic', 'too_large', 'invalid_json', 'invalid_shape', 'too_many_samples', 'invalid_metric', 'invalid_value', 'invalid_timestamp'];

/**
 * Boots the app with the embedded broker and embedded PostgreSQL. MQTT_PORT=0
 * lets the OS pick the broker's port at listen time: a port probed free
 * beforehand can be taken by another test's client in between, and a failed
 * boot leaves embedded PostgreSQL running (the app is never returned to close).
 */
async function bootEmbedded(dataDir: string): Promise<{ app: TestApp; mqttUrl: string }> {
  const app = await startTestApp({ DATA_DIR: dataDir, MQTT_PORT: '0', MQTT_URL: undefined, DATABASE_URL: undefined });
  const mqttPort = app.get(EmbeddedBroker).port;
  if (!mqttPort) throw new Error('embedded broker is not listening');
  return { app, mqttUrl: `mqtt://127.0.0.1:${mqttPort}` };
}

async function scrape(app: TestApp): Promise<string> {
  const res = await app.app.inject({ method: 'GET', url: '/metrics' });
  expect(res.statusCode).toBe(200);
  return res.body;
}

/** Value of one sample line of the Prometheus text, e.g. metric('x_total', 'reason="invalid_json"'). */
function metric(text: string, name: string, labels?: string): number {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const labelPart = labels ? `\\{${labels.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\}` : '';
  const match = new RegExp(`^${escaped}${labelPart} (\\S+)$`, 'm').exec(text);
  if (!match) throw new Error(`metric ${name}${labels ? `{${labels}}` : ''} not found in /metrics`);
  return Number(match[1]);
}

async function count(app: TestApp, sql: string, params: unknown[]): Promise<number> {
  const rows = await app.get(DatabaseService).query<{ n: number }>(sql, params);
  return rows[0].n;
}

/**
 * Waits until ingestion is quiet (received/ingested/rejected counters unchanged
 * for 150 ms), so a metrics baseline is not disturbed by an earlier test's tail.
 */
async function settle(app: TestApp): Promise<void> {
  const snapshot = async () => {
    const text = await scrape(app);
    return ['telemetry_messages_received_total', 'telemetry_samples_ingested_total', 'telemetry_ingest_lag_seconds_count']
      .map((name) => metric(text, name))
      .join(',');
  };
  let previous = await snapshot();
  for (let i = 0; i < 100; i++) {
    await new Promise((resolve) => setTimeout(resolve, 150));
    const current = await snapshot();
    if (current === previous) return;
    previous = current;
  }
  throw new Error('ingestion did not settle');
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

describe('embedded mode: in-process broker and PostgreSQL', () => {
  let dataDir: string;
  let app: TestApp;
  let mqttUrl: string;
  const devices: MqttClient[] = [];

  async function device(id: string): Promise<MqttClient> {
    const client = await connectDevice(mqttUrl, { clientId: `${id}-${Math.random().toString(36).slice(2, 8)}` });
    devices.push(client);
    return client;
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-e2e-embedded-'));
    ({ app, mqttUrl } = await bootEmbedded(dataDir));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.endAsync(true).catch(() => undefined)));
    await app?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('has the sample committed by the time the device receives its PUBACK (QoS 1)', async () => {
    const dev = await device('dev-1');
    const topic = telemetryTopic('dev-1');
    const before = Date.now();
    await dev.publishAsync(topic, JSON.stringify({ metrics: { temperature: 21.5 } }), { qos: 1 });
    // No waiting: the acknowledgement itself must mean "committed".
    const rows = await app
      .get(DatabaseService)
      .query<{ metric: string; value: number; ts: Date }>(`SELECT metric, value, ts FROM samples WHERE device_id = 'dev-1'`);
    expect(rows.map((r) => [r.metric, r.value])).toEqual([['temperature', 21.5]]);
    // No ts in the payload: the server's receive time is used.
    expect(rows[0].ts.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(rows[0].ts.getTime()).toBeLessThanOrEqual(Date.now() + 1000);

    // The same holds message after message, not only by luck of timing once.
    const base = Date.UTC(2026, 0, 5, 12, 0, 0);
    for (let i = 0; i < 10; i++) {
      await dev.publishAsync(topic, JSON.stringify({ ts: base + i * 1000, metrics: { humidity: 40 + i } }), { qos: 1 });
      const stored = await count(app, `SELECT count(*)::int AS n FROM samples WHERE device_id = 'dev-1' AND metric = 'humidity'`, []);
      expect({ afterAck: i, stored }).toEqual({ afterAck: i, stored: i + 1 });
    }
  });

  it('stores every sample of 5 devices publishing 200 QoS 1 messages each concurrently, exactly once', async () => {
    await settle(app);
    const metricsBefore = await scrape(app);
    const prefix = `load-${Math.random().toString(36).slice(2, 8)}-`;
    const base = Date.UTC(2026, 1, 1, 0, 0, 0);
    const expectedPerDevice = new Map<string, number>();
    const expectedSum = new Map<string, number>();
    const clients = await Promise.all([0, 1, 2, 3, 4].map((d) => device(`${prefix}${d}`)));
    const publishes: Array<Promise<unknown>> = [];
    clients.forEach((client, d) => {
      const id = `${prefix}${d}`;
      let samples = 0;
      let sum = 0;
      for (let i = 0; i < 200; i++) {
        const ts = base + i * 60_000;
        let payload: unknown;
        if (i % 4 === 0) {
          // A batch of 3 samples with 2 metrics each, at distinct times.
          payload = [0, 1, 2].map((k) => ({ ts: ts + k * 1000 + 1, metrics: { t: d + i + k, h: i * 0.5 } }));
          samples += 6;
          sum += [0, 1, 2].reduce((acc, k) => acc + d + i + k + i * 0.5, 0);
        } else if (i % 4 === 1) {
          // ISO time and a boolean (stored as 1).
          payload = { ts: new Date(ts).toISOString(), metrics: { t: d + i, on: true } };
          samples += 2;
          sum += d + i + 1;
        } else {
          payload = { ts, metrics: { t: d + i } };
          samples += 1;
          sum += d + i;
        }
        publishes.push(client.publishAsync(telemetryTopic(id), JSON.stringify(payload), { qos: 1 }));
      }
      expectedPerDevice.set(id, samples);
      expectedSum.set(id, sum);
    });
    const total = [...expectedPerDevice.values()].reduce((a, b) => a + b, 0);
    await withTimeout(Promise.all(publishes), 30_000, '1000 QoS 1 publishes');

    const countAll = () => count(app, `SELECT count(*)::int AS n FROM samples WHERE device_id LIKE $1`, [`${prefix}%`]);
    await waitFor(async () => (await countAll()) >= total, 15_000, `${total} samples`);
    await new Promise((resolve) => setTimeout(resolve, 200)); // let any stray duplicate land
    const rows = await app
      .get(DatabaseService)
      .query<{ device_id: string; n: number; s: number }>(
        `SELECT device_id, count(*)::int AS n, sum(value) AS s FROM samples WHERE device_id LIKE $1 GROUP BY 1 ORDER BY 1`,
        [`${prefix}%`],
      );
    expect(rows.map((r) => [r.device_id, r.n])).toEqual([...expectedPerDevice.entries()].sort());
    for (const row of rows) expect(row.s).toBeCloseTo(expectedSum.get(row.device_id) as number, 6);
    expect(await count(app, `SELECT count(*)::int AS n FROM devices WHERE id LIKE $1`, [`${prefix}%`])).toBe(5);

    const metricsAfter = await scrape(app);
    expect(metric(metricsAfter, 'telemetry_samples_ingested_total') - metric(metricsBefore, 'telemetry_samples_ingested_total')).toBe(total);
    expect(metric(metricsAfter, 'telemetry_messages_received_total') - metric(metricsBefore, 'telemetry_messages_received_total')).toBe(1000);
    expect(metric(metricsAfter, 'telemetry_ingest_batch_size_count')).toBeGreaterThan(metric(metricsBefore, 'telemetry_ingest_batch_size_count'));
    expect(metric(metricsAfter, 'telemetry_ingest_lag_seconds_count') - metric(metricsBefore, 'telemetry_ingest_lag_seconds_count')).toBe(1000);
  }, 60_000);

  it('acknowledges bad input, stores none of it, counts it by reason, and stores the valid messages around it', async () => {
    const dev = await device('bad-input');
    await settle(app);
    const before = await scrape(app);
    const old = Date.UTC(1999, 11, 31, 23, 0, 0);
    const now = Date.now();
    const messages: Array<[string, string]> = [
      [telemetryTopic('ok-before'), JSON.stringify({ ts: now, metrics: { a: 1 } })],
      [telemetryTopic('bad-json'), 'not json'],
      [telemetryTopic('bad-metric'), JSON.stringify({ ts: now, metrics: { 'bad name!': 1 } })],
      [telemetryTopic('bad-ts'), JSON.stringify({ ts: old, metrics: { a: 1 } })],
      [telemetryTopic('bad-ts'), JSON.stringify({ ts: '1999-06-01T00:00:00Z', metrics: { a: 1 } })],
      // A batch with one invalid sample is rejected whole.
      [
        telemetryTopic('bad-batch'),
        JSON.stringify([
          { ts: now, metrics: { a: 1 } },
          { ts: old, metrics: { a: 2 } },
        ]),
      ],
      [telemetryTopic('ok-after'), JSON.stringify({ ts: now, metrics: { a: 2 } })],
    ];
    // Every publish resolves: the PUBACK arrives for rejected messages too.
    await withTimeout(Promise.all(messages.map(([topic, payload]) => dev.publishAsync(topic, payload, { qos: 1 }))), 10_000, 'publishes including bad input');
    expect(dev.connected).toBe(true);

    const countOk = () => count(app, `SELECT count(*)::int AS n FROM samples WHERE device_id IN ('ok-before','ok-after')`, []);
    await waitFor(async () => (await countOk()) === 2, 10_000, 'the valid messages around the bad ones');
    await settle(app);
    const stored = await app
      .get(DatabaseService)
      .query<{ device_id: string; value: number }>(
        `SELECT device_id, value FROM samples WHERE device_id IN ('ok-before','ok-after','bad-json','bad-metric','bad-ts','bad-batch') ORDER BY 1`,
      );
    expect(stored).toEqual([
      { device_id: 'ok-after', value: 2 },
      { device_id: 'ok-before', value: 1 },
    ]);
    expect(await count(app, `SELECT count(*)::int AS n FROM devices WHERE id LIKE 'bad-%'`, [])).toBe(0);

    const after = await scrape(app);
    const delta = (name: string, labels?: string) => metric(after, name, labels) - metric(before, name, labels);
    expect(delta('telemetry_messages_rejected_total', 'reason="invalid_json"')).toBe(1);
    expect(delta('telemetry_messages_rejected_total', 'reason="invalid_metric"')).toBe(1);
    expect(delta('telemetry_messages_rejected_total', 'reason="invalid_timestamp"')).toBe(3);
    expect(delta('telemetry_messages_rejected_total', 'reason="invalid_value"')).toBe(0);
    expect(delta('telemetry_messages_received_total')).toBe(7);
    expect(delta('telemetry_samples_ingested_total')).toBe(2);
    // The reason is logged (rate-limited), naming why.
    expect(app.logs.some((line) => line.includes('message rejected') && line.includes('invalid_timestamp'))).toBe(true);
  });

  it('answers /health with 200 while PostgreSQL and the broker are up', async () => {
    const res = await app.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', checks: { postgres: { status: 'up' }, mqtt: { status: 'up' } } });
    expect(typeof res.json().checks.postgres.latencyMs).toBe('number');
  });

  it('serves /metrics in the Prometheus text format with process metrics and every ingestion metric of docs/api.md Metrics', async () => {
    const res = await app.app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    const body = res.body;
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes']) {
      expect({ name, present: new RegExp(`^${name} \\d`, 'm').test(body) }).toEqual({ name, present: true });
    }
    for (const [name, type] of INGESTION_METRICS) {
      expect({ name, declared: body.includes(`\n# TYPE ${name} ${type}\n`) }).toEqual({ name, declared: true });
    }
    // Earlier tests ingested data, so the histograms carry observations.
    for (const name of ['telemetry_ingest_batch_size', 'telemetry_ingest_flush_seconds', 'telemetry_ingest_lag_seconds']) {
      expect(metric(body, `${name}_count`)).toBeGreaterThan(0);
      expect(metric(body, `${name}_bucket`, 'le="+Inf"')).toBe(metric(body, `${name}_count`));
    }
    // Every reject reason is exported from the start, so dashboards show 0 rather than "no data".
    for (const reason of REJECT_REASONS) {
      expect(Number.isFinite(metric(body, 'telemetry_messages_rejected_total', `reason="${reason}"`))).toBe(true);
    }
  });
});

describe('embedded mode: persistence across restarts and graceful shutdown', () => {
  let dataDir: string;
  let app: TestApp | undefined;
  let mqttUrl: string;
  const devices: MqttClient[] = [];

  async function device(id: string): Promise<MqttClient> {
    const client = await connectDevice(mqttUrl, { clientId: `${id}-${Math.random().toString(36).slice(2, 8)}` });
    devices.push(client);
    return client;
  }

  async function restart(): Promise<TestApp> {
    await app?.close();
    app = undefined;
    ({ app, mqttUrl } = await bootEmbedded(dataDir));
    return app;
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-e2e-restart-'));
  });

  afterAll(async () => {
    await Promise.all(devices.map((d) => d.endAsync(true).catch(() => undefined)));
    await app?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('keeps stored rows when the app restarts on the same DATA_DIR, and adds new ones', async () => {
    const first = await restart();
    const base = Date.UTC(2026, 2, 3, 8, 0, 0);
    const dev = await device('persist-1');
    await Promise.all(
      [0, 1, 2].map((i) => dev.publishAsync(telemetryTopic('persist-1'), JSON.stringify({ ts: base + i * 1000, metrics: { t: i } }), { qos: 1 })),
    );
    const stored = (a: TestApp) => count(a, `SELECT count(*)::int AS n FROM samples WHERE device_id = 'persist-1'`, []);
    await waitFor(async () => (await stored(first)) === 3, 10_000, 'three samples before restart');
    await dev.endAsync();

    const second = await restart();
    expect(await stored(second)).toBe(3);
    const rows = await second
      .get(DatabaseService)
      .query<{ ts: Date; value: number }>(`SELECT ts, value FROM samples WHERE device_id = 'persist-1' ORDER BY ts`);
    expect(rows.map((r) => [r.ts.getTime(), r.value])).toEqual([
      [base, 0],
      [base + 1000, 1],
      [base + 2000, 2],
    ]);

    const again = await device('persist-1');
    await Promise.all(
      [3, 4].map((i) => again.publishAsync(telemetryTopic('persist-1'), JSON.stringify({ ts: base + i * 1000, metrics: { t: i } }), { qos: 1 })),
    );
    // One already-stored point again: still stored once.
    await again.publishAsync(telemetryTopic('persist-1'), JSON.stringify({ ts: base, metrics: { t: 0 } }), { qos: 1 });
    await waitFor(async () => (await stored(second)) === 5, 10_000, 'five samples after restart');
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await stored(second)).toBe(5);
    const [hourly] = await second
      .get(DatabaseService)
      .query<{ count: number }>(`SELECT sum(count)::int AS count FROM hourly_parts WHERE device_id = 'persist-1'`);
    expect(hourly.count).toBe(5);
  }, 60_000);

  it('on close (what SIGTERM triggers) commits everything whose PUBACK a device received', async () => {
    const current = app ?? (await restart());
    const run = Math.random().toString(36).slice(2, 8);
    const ids = [0, 1, 2, 3, 4, 5, 6, 7].map((d) => `shutdown-${run}-${d}`);
    const clients = await Promise.all(ids.map((id) => device(id)));
    const acked = new Map<string, Set<number>>(ids.map((id) => [id, new Set<number>()]));
    const sent = new Map<string, number>(ids.map((id) => [id, 0]));
    const base = Date.UTC(2026, 3, 1, 0, 0, 0);
    let stop = false;

    // Each device publishes a steady, jittered stream of QoS 1 messages (up to 20 unacknowledged)
    // until the service goes away, so batches of different devices overlap when it closes.
    const loops = clients.map(async (client, d) => {
      const id = ids[d];
      let next = 0;
      const inflight = new Set<Promise<void>>();
      while (!stop && client.connected) {
        if (inflight.size >= 20) {
          // Unacknowledged publishes never settle once the connection is gone: poll as well.
          await Promise.race([...inflight, new Promise((resolve) => setTimeout(resolve, 50))]);
          continue;
        }
        const i = next++;
        sent.set(id, i + 1);
        const p: Promise<void> = client
          .publishAsync(telemetryTopic(id), JSON.stringify({ ts: base + i, metrics: { seq: i } }), { qos: 1 })
          .then(
            () => void acked.get(id)?.add(i),
            () => undefined,
          )
          .finally(() => inflight.delete(p));
        inflight.add(p);
        await new Promise((resolve) => setTimeout(resolve, (d + i) % 3));
      }
    });

    const totalAcked = () => [...acked.values()].reduce((a, s) => a + s.size, 0);
    await waitFor(() => totalAcked() >= 400, 20_000, '400 acknowledged messages before shutdown');
    const totalSent = () => [...sent.values()].reduce((a, b) => a + b, 0);
    const sentAtClose = totalSent();
    const inflightAtClose = sentAtClose - totalAcked();
    await current.close(); // the same hooks SIGTERM runs
    app = undefined;
    stop = true;
    await withTimeout(Promise.all(loops), 10_000, 'publisher loops ending');
    for (const client of clients) await client.endAsync(true).catch(() => undefined);

    const ackedTotal = totalAcked();
    const sentTotal = totalSent();
    // The close really happened under load: messages were unacknowledged or still being sent.
    expect(inflightAtClose + (sentTotal - sentAtClose)).toBeGreaterThan(0);

    const after = await restart();
    const rows = await after
      .get(DatabaseService)
      .query<{ device_id: string; seq: number }>(`SELECT device_id, value AS seq FROM samples WHERE device_id = ANY($1::text[])`, [ids]);
    const storedSet = new Set(rows.map((r) => `${r.device_id}/${r.seq}`));
    const lost: string[] = [];
    for (const [id, seqs] of acked) for (const seq of seqs) if (!storedSet.has(`${id}/${seq}`)) lost.push(`${id}/${seq}`);
    expect({ ackedTotal, sentTotal, lostCount: lost.length, firstLost: lost.slice(0, 5) }).toEqual({
      ackedTotal,
      sentTotal,
      lostCount: 0,
      firstLost: [],
    });
    // Nothing was stored that the devices did not send.
    expect(rows.length).toBeLessThanOrEqual(sentTotal);
    expect(rows.length).toBeGreaterThanOrEqual(ackedTotal);
  }, 90_000);
});
