// The benchmark's yardstick: the least a service could do with the same load.
// mqtt.js (acknowledging on receipt) → JSON.parse → one idempotent multi-row
// INSERT (unnest arrays, ON CONFLICT DO NOTHING) per batch of 5000 samples or
// 25 ms. No framework, no validation, no rollups, no cache, no fan-out.
import mqtt from 'mqtt';
import { Client } from 'pg';

async function main(): Promise<void> {
  const [mqttUrl, databaseUrl] = process.argv.slice(2);
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  await db.query(`CREATE TABLE IF NOT EXISTS bare_samples (
    device_id text COLLATE "C" NOT NULL, metric text COLLATE "C" NOT NULL, ts timestamptz NOT NULL,
    value double precision NOT NULL, PRIMARY KEY (device_id, metric, ts))`);
  let devices: string[] = [];
  let metrics: string[] = [];
  let times: string[] = [];
  let values: number[] = [];
  let writing: Promise<unknown> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (devices.length === 0) return;
    const params = [devices, metrics, times, values];
    devices = [];
    metrics = [];
    times = [];
    values = [];
    writing = writing.then(() =>
      db.query(`INSERT INTO bare_samples SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[]) ON CONFLICT DO NOTHING`, params),
    );
  };
  const client = await mqtt.connectAsync(mqttUrl, { clientId: `bare-${process.pid}`, clean: true, protocolVersion: 4 });
  client.on('message', (topic, payload) => {
    const deviceId = topic.split('/')[1];
    const sample = JSON.parse(payload.toString()) as { ts: number; metrics: Record<string, number> };
    const ts = new Date(sample.ts).toISOString();
    for (const [metric, value] of Object.entries(sample.metrics)) {
      devices.push(deviceId);
      metrics.push(metric);
      times.push(ts);
      values.push(value);
    }
    if (devices.length >= 5000) flush();
    else if (!timer) timer = setTimeout(flush, 25);
  });
  await client.subscribeAsync('devices/+/telemetry', { qos: 1 });
  process.send?.({ ready: true });
  process.once('SIGTERM', () => {
    void client
      .endAsync()
      .then(() => db.end())
      .then(() => process.exit(0));
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`bare pipeline failed: ${String(error)}\n`);
  process.exit(1);
});
