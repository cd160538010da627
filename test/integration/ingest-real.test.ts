// End to end against the shared PostgreSQL and Mosquitto: device → broker →
// service → committed rows, with exact rollups under duplicates.
import type { MqttClient } from 'mqtt';
import { describeWithServers, SHARED_MQTT_URL } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { connectDevice, publishAll, telemetryTopic } from '../support/publisher';
import { waitFor } from '../support/free-port';
import { clearSession } from '../support/mqtt-session';
import { SampleWriter } from '../../src/storage/sample-writer';

describeWithServers(['postgres', 'mosquitto'])('ingestion with real PostgreSQL and Mosquitto', () => {
  let db: TestDatabase;
  let app: TestApp;
  let device: MqttClient;
  const run = Math.random().toString(36).slice(2, 8);

  beforeAll(async () => {
    db = await createTestDatabase('ingest_real');
    // A fixed instance id: a session left by a crashed run is cleared, not left to steal messages.
    await clearSession(SHARED_MQTT_URL, 'telemetry-hub-ingest-real');
    app = await startTestApp({ DATABASE_URL: db.url, MQTT_URL: SHARED_MQTT_URL, INSTANCE_ID: 'ingest-real' });
    device = await connectDevice(SHARED_MQTT_URL);
  });

  afterAll(async () => {
    await device?.endAsync();
    await app?.close();
    await clearSession(SHARED_MQTT_URL, 'telemetry-hub-ingest-real');
    await db?.drop();
  });

  async function countSamples(prefix: string): Promise<number> {
    const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM samples WHERE device_id LIKE $1`, [`${prefix}%`]);
    return row.n;
  }

  it('stores a published sample and records the device', async () => {
    const id = `e2e-${run}-a`;
    await publishAll(device, [{ topic: telemetryTopic(id), payload: JSON.stringify({ ts: 1763762400000, metrics: { temperature: 21.5, humidity: 40 } }) }]);
    await waitFor(async () => (await countSamples(id)) === 2, 10000, 'two samples');
    const rows = await db.query<{ metric: string; value: number; ts: Date }>(`SELECT metric, value, ts FROM samples WHERE device_id = $1 ORDER BY metric`, [
      id,
    ]);
    expect(rows.map((r) => [r.metric, r.value, r.ts.getTime()])).toEqual([
      ['humidity', 40, 1763762400000],
      ['temperature', 21.5, 1763762400000],
    ]);
    const [devRow] = await db.query<{ id: string }>(`SELECT id FROM devices WHERE id = $1`, [id]);
    expect(devRow.id).toBe(id);
  });

  it('stores duplicates once and keeps hourly aggregates equal to GROUP BY over samples', async () => {
    const prefix = `dup-${run}-`;
    const base = Date.UTC(2026, 10, 20, 10, 0, 0);
    const messages: Array<{ topic: string; payload: string }> = [];
    for (let d = 0; d < 5; d++) {
      for (let i = 0; i < 40; i++) {
        const ts = base + i * 5 * 60_000; // spans a little over 3 hours
        const payload = JSON.stringify({ ts, metrics: { t: d * 10 + i * 0.5, h: i } });
        messages.push({ topic: telemetryTopic(`${prefix}${d}`), payload });
        if (i % 3 === 0) messages.push({ topic: telemetryTopic(`${prefix}${d}`), payload }); // exact duplicate
      }
    }
    // The same points again as one batch payload, as a redelivery would bring them.
    messages.push({
      topic: telemetryTopic(`${prefix}0`),
      payload: JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ ts: base + i * 5 * 60_000, metrics: { t: i * 0.5, h: i } }))),
    });
    await publishAll(device, messages);
    await waitFor(async () => (await countSamples(prefix)) === 5 * 40 * 2, 15000, 'all distinct samples');
    // Give any straggling duplicate a moment to (wrongly) land.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await countSamples(prefix)).toBe(400);

    await expectHourlyTier(prefix, 'hourly_parts');
    // The service folds the quiet minutes by itself (10 s quiet, every 5 s): then the table alone holds it all.
    await waitFor(
      async () =>
        (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM minute_aggregates WHERE device_id LIKE $1 AND NOT folded`, [`${prefix}%`]))[0].n === 0,
      30_000,
      'the minutes folded into the hourly tier',
    );
    await expectHourlyTier(prefix, 'hourly_aggregates');
  }, 60_000);

  /** The hourly rows of `source` (added up per hour) equal GROUP BY hour over samples. */
  async function expectHourlyTier(prefix: string, source: 'hourly_parts' | 'hourly_aggregates'): Promise<void> {
    const expected = await db.query<Record<string, unknown>>(
      `SELECT device_id, metric, date_trunc('hour', ts, 'UTC') AS bucket, count(*)::int AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
       FROM samples WHERE device_id LIKE $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      [`${prefix}%`],
    );
    const actual = await db.query<Record<string, unknown>>(
      `SELECT device_id, metric, bucket, sum(count)::int AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max FROM ${source}
       WHERE device_id LIKE $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
      [`${prefix}%`],
    );
    expect(actual.length).toBe(expected.length);
    expect(actual.length).toBeGreaterThan(5 * 2 * 3);
    actual.forEach((row, i) => {
      const want = expected[i];
      expect([row.device_id, row.metric, (row.bucket as Date).getTime(), row.count, row.min, row.max]).toEqual([
        want.device_id,
        want.metric,
        (want.bucket as Date).getTime(),
        want.count,
        want.min,
        want.max,
      ]);
      // Float sums may differ in the last bits with a different addition order.
      expect(row.sum as number).toBeCloseTo(want.sum as number, 9);
    });
  }

  it('rejects bad input without disturbing valid messages around it', async () => {
    const prefix = `mix-${run}-`;
    const metricsText = async () => (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
    const rejectedBefore = Number(/telemetry_messages_rejected_total\{reason="invalid_json"\} (\d+)/.exec(await metricsText())?.[1]);
    await publishAll(device, [
      { topic: telemetryTopic(`${prefix}ok1`), payload: JSON.stringify({ metrics: { a: 1 } }) },
      { topic: telemetryTopic(`${prefix}bad`), payload: 'not json' },
      { topic: telemetryTopic(`${prefix}bad`), payload: JSON.stringify([{ metrics: { a: 1 } }, { metrics: { a: 'x' } }]) },
      { topic: telemetryTopic(`${prefix}ok2`), payload: JSON.stringify({ metrics: { a: 2 } }) },
    ]);
    await waitFor(async () => (await countSamples(prefix)) === 2, 10000, 'valid samples');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const rows = await db.query<{ device_id: string }>(`SELECT device_id FROM samples WHERE device_id LIKE $1 ORDER BY 1`, [`${prefix}%`]);
    expect(rows.map((r) => r.device_id)).toEqual([`${prefix}ok1`, `${prefix}ok2`]);
    const text = await metricsText();
    expect(Number(/telemetry_messages_rejected_total\{reason="invalid_json"\} (\d+)/.exec(text)?.[1])).toBe(rejectedBefore + 1);
    expect(Number(/telemetry_messages_rejected_total\{reason="invalid_value"\} (\d+)/.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
  });

  it('a point sent twice in one batch with different values: the stored value is the one reported as new', async () => {
    const deviceId = `twice-${run}`;
    const ts = Date.now() - 60_000;
    // Device ids sort before and after it so the duplicate pair sits mid-batch.
    const samples = [
      { deviceId: `a-${deviceId}`, metric: 't', ts, value: 0 },
      { deviceId, metric: 't', ts, value: 1 },
      { deviceId: `z-${deviceId}`, metric: 't', ts, value: 0 },
      { deviceId, metric: 't', ts, value: 2 },
    ];
    const seen = { firstSeenMs: ts, lastSeenMs: ts + 1500 };
    const stored = await app.get(SampleWriter).write(
      samples,
      [`a-${deviceId}`, deviceId, `z-${deviceId}`].map((id) => ({ deviceId: id, ...seen })),
    );
    const rows = await db.query<{ value: number }>(`SELECT value FROM samples WHERE device_id = $1`, [deviceId]);
    expect(rows).toEqual([{ value: 1 }]);
    expect(stored.filter((s) => s.deviceId === deviceId)).toEqual([{ deviceId, metric: 't', ts, value: 1 }]);
    // Device times travel as epoch ms and come back to the millisecond.
    const [device] = await db.query<{ first_seen: Date; last_seen: Date }>(`SELECT first_seen, last_seen FROM devices WHERE id = $1`, [deviceId]);
    expect([device.first_seen.getTime(), device.last_seen.getTime()]).toEqual([ts, ts + 1500]);
  });

  it('reports healthy dependencies', async () => {
    const res = await app.app.inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ status: 'ok', checks: { postgres: { status: 'up' }, mqtt: { status: 'up' } } });
  });
});
