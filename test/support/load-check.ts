// Shared load and verification for the ingestion fault tests (kill-redelivery,
// fault-*): a stream of unique QoS 1 points, a publisher that keeps a bounded
// window of un-acknowledged publishes (optionally paced), and the exact final
// checks: every published point stored once with its value, and hourly
// rollups equal to a GROUP BY over samples.
//
//   const load = createLoad({ prefix: 'pg', messages: 16_000, devices: 200 });
//   const progress = newProgress();
//   const done = publishWindowed(client, load, { window: 500, ratePerSec: 2000 }, progress);
//   ...
//   await waitUntilStored(db, load, app);      // all there, or the app went idle
//   await waitUntilIdle(app);                  // late redeliveries landed
//   await verifyStoredExactlyOnce(db, load);   // jest expectations
import type { MqttClient } from 'mqtt';
import { waitFor } from './free-port';
import { type AppProcess, metricValue } from './app-process';
import { telemetryTopic } from './publisher';

export const METRICS = ['temperature', 'humidity', 'pressure', 'voltage'] as const;
const HOUR = 3_600_000;

export interface Point {
  deviceId: string;
  ts: number;
  values: number[];
}

export interface Load {
  messages: number;
  devices: number;
  expectedSamples: number;
  points: Point[];
  packets: Array<{ topic: string; payload: string }>;
}

export interface LoadOptions {
  /** Device ids are `${prefix}-000` … */
  prefix: string;
  messages: number;
  devices: number;
  /** Milliseconds between a device's consecutive points (default 97 s: several hour buckets per series). */
  stepMs?: number;
}

/**
 * `messages` unique points (one message each, 4 metrics), round-robin over the
 * devices, starting a few hours in the recent past (inside the accepted range
 * whatever the date).
 */
export function createLoad(options: LoadOptions): Load {
  const { prefix, messages, devices } = options;
  const stepMs = options.stepMs ?? 97_000;
  const baseTs = Math.floor(Date.now() / HOUR) * HOUR - 6 * HOUR + 40 * 60_000;
  const points: Point[] = [];
  for (let i = 0; i < messages; i++) {
    const deviceId = `${prefix}-${String(i % devices).padStart(3, '0')}`;
    const ts = baseTs + Math.floor(i / devices) * stepMs;
    // Multiples of 1/8 are exact in binary: sums are exact whatever the order.
    const values = METRICS.map((_, m) => ((i * 37 + m * 101) % 1000) / 8 - 40 * m);
    points.push({ deviceId, ts, values });
  }
  const packets = points.map((p) => ({
    topic: telemetryTopic(p.deviceId),
    payload: JSON.stringify({ ts: p.ts, metrics: Object.fromEntries(METRICS.map((name, m) => [name, p.values[m]])) }),
  }));
  return { messages, devices, expectedSamples: messages * METRICS.length, points, packets };
}

export interface PublishProgress {
  /** publish() calls made (the client may still hold some, e.g. while disconnected). */
  sent: number;
  /** PUBACKs the publisher received. */
  acked: number;
}

export const newProgress = (): PublishProgress => ({ sent: 0, acked: 0 });

export interface PublishOptions {
  /** Un-acked publishes the publisher keeps in flight at most. */
  window: number;
  /** When set, message i is not published before start + i / ratePerSec seconds. */
  ratePerSec?: number;
}

/** Publishes every packet of the load at QoS 1 with at most `window` un-acked; resolves when all are acked. */
export function publishWindowed(client: MqttClient, load: Load, options: PublishOptions, progress: PublishProgress): Promise<void> {
  const { packets } = load;
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let inFlight = 0;
    let timer: NodeJS.Timeout | undefined;
    const allowed = () =>
      options.ratePerSec === undefined ? packets.length : Math.min(packets.length, Math.floor(((Date.now() - started) * options.ratePerSec) / 1000) + 1);
    const pump = () => {
      const limit = allowed();
      while (inFlight < options.window && progress.sent < limit) {
        const m = packets[progress.sent++];
        inFlight++;
        client.publish(m.topic, m.payload, { qos: 1 }, (error) => {
          inFlight--;
          if (error) {
            clearTimeout(timer);
            reject(error);
            return;
          }
          progress.acked++;
          if (progress.acked === packets.length) {
            clearTimeout(timer);
            resolve();
          } else pump();
        });
      }
      // Paced: come back when the next message is due (acks also pump).
      if (progress.sent < packets.length && inFlight < options.window && timer === undefined) {
        timer = setTimeout(() => {
          timer = undefined;
          pump();
        }, 5);
      }
    };
    pump();
  });
}

/** Anything with a query method (TestDatabase, PrivatePostgres). */
export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

export async function sampleCount(db: Queryable): Promise<number> {
  const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM samples`);
  return row.n;
}

/** Messages (device, ts) stored with fewer or more than their 4 points: must be 0 (one message commits whole). */
export async function partialMessages(db: Queryable): Promise<number> {
  const [row] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM (SELECT device_id, ts FROM samples GROUP BY 1, 2 HAVING count(*) <> $1) p`, [
    METRICS.length,
  ]);
  return row.n;
}

/** For each message of the load (by index): are all its points stored? */
export async function storedMessages(db: Queryable, load: Load): Promise<boolean[]> {
  const rows = await db.query<{ device_id: string; ts: Date }>(`SELECT device_id, ts FROM samples GROUP BY 1, 2 HAVING count(*) = $1`, [METRICS.length]);
  const have = new Set(rows.map((r) => `${r.device_id}|${r.ts.getTime()}`));
  return load.points.map((p) => have.has(`${p.deviceId}|${p.ts}`));
}

/** Index ranges where `flags` is false, e.g. ["4367-11999"] (at most `limit`); `offset` is added to every index. */
export function missingRanges(flags: boolean[], offset = 0, limit = 20): string[] {
  const ranges: string[] = [];
  let from = -1;
  flags.forEach((ok, i) => {
    if (!ok && from < 0) from = i;
    if (ok && from >= 0) {
      ranges.push(`${from + offset}-${i - 1 + offset}`);
      from = -1;
    }
  });
  if (from >= 0) ranges.push(`${from + offset}-${flags.length - 1 + offset}`);
  return ranges.slice(0, limit);
}

export const received = (text: string): number => metricValue(text, 'telemetry_messages_received_total');
export const ingested = (text: string): number => metricValue(text, 'telemetry_samples_ingested_total');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until every point of the load is stored, or (failure, reported by the
 * caller's count check) until the app has received and ingested nothing for `idleMs`.
 */
export async function waitUntilStored(db: Queryable, load: Load, app: AppProcess, timeoutMs = 40_000, idleMs = 2000): Promise<void> {
  let last = { received: -1, ingested: -1, at: Date.now() };
  await waitFor(
    async () => {
      if ((await sampleCount(db)) >= load.expectedSamples) return true;
      const text = await app.metrics();
      const now = { received: received(text), ingested: ingested(text), at: Date.now() };
      if (now.received !== last.received || now.ingested !== last.ingested) last = now;
      return Date.now() - last.at >= idleMs;
    },
    timeoutMs,
    `${load.expectedSamples} samples`,
  );
}

/** Lets redeliveries still on their way land; resolves with the app's /metrics once two scrapes 300 ms apart agree. */
export async function waitUntilIdle(app: AppProcess, timeoutMs = 15_000): Promise<string> {
  await sleep(300);
  let final = await app.metrics();
  await waitFor(
    async () => {
      await sleep(300);
      const text = await app.metrics();
      const stable = received(text) === received(final) && ingested(text) === ingested(final);
      final = text;
      return stable;
    },
    timeoutMs,
    'the service to go idle',
  );
  return final;
}

export type Rollup = { device_id: string; metric: string; bucket: Date; count: number; sum: number; min: number; max: number };

/**
 * The exact final checks (jest expectations):
 * (a) every published point exactly once, with its value; one devices row per device;
 * (b) hourly rollups equal GROUP BY date_trunc('hour', ts, 'UTC') over samples.
 * Samples are unique by key, so count(*) = count(DISTINCT) cannot fail on its
 * own; a double store would show in the rollups (count/sum/min/max).
 */
export async function verifyStoredExactlyOnce(db: Queryable, load: Load): Promise<void> {
  // (a)
  const [counts] = await db.query<{ total: number; distinct: number }>(
    `SELECT count(*)::int AS total, count(DISTINCT (device_id, metric, ts))::int AS distinct FROM samples`,
  );
  expect(counts).toEqual({ total: load.expectedSamples, distinct: load.expectedSamples });
  const expectedRows = { devices: [] as string[], metrics: [] as string[], times: [] as string[], values: [] as number[] };
  for (const p of load.points) {
    METRICS.forEach((name, m) => {
      expectedRows.devices.push(p.deviceId);
      expectedRows.metrics.push(name);
      expectedRows.times.push(new Date(p.ts).toISOString());
      expectedRows.values.push(p.values[m]);
    });
  }
  const missing = await db.query<{ device_id: string; metric: string; ts: Date; want: number; got: number | null }>(
    `SELECT e.device_id, e.metric, e.ts, e.value AS want, s.value AS got
     FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[]) AS e(device_id, metric, ts, value)
     LEFT JOIN samples s ON s.device_id = e.device_id AND s.metric = e.metric AND s.ts = e.ts
     WHERE s.value IS DISTINCT FROM e.value
     LIMIT 20`,
    [expectedRows.devices, expectedRows.metrics, expectedRows.times, expectedRows.values],
  );
  expect(missing).toEqual([]);
  const [deviceRows] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM devices`);
  expect(deviceRows.n).toBe(load.devices);

  // (b)
  const rollups = await expectRollupsEqualGroupBy(db);
  expect(rollups.length).toBeGreaterThan(load.devices * METRICS.length * 2); // several buckets per series
  expect(rollups.reduce((n, r) => n + r.count, 0)).toBe(load.expectedSamples);
}

/**
 * Jest expectations: the hourly tier (hourly_parts: the folded hours plus the
 * minutes not folded yet, added up per hour) holds exactly the rows of
 * GROUP BY date_trunc('hour', ts, 'UTC') over samples (count, min, max exact;
 * sum to 6 decimals). Resolves with the rollup rows, ordered by key.
 */
export async function expectRollupsEqualGroupBy(db: Queryable): Promise<Rollup[]> {
  const grouped = await db.query<Rollup>(
    `SELECT device_id, metric, date_trunc('hour', ts, 'UTC') AS bucket, count(*)::int AS count, sum(value) AS sum, min(value) AS min, max(value) AS max
     FROM samples GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  );
  const rollups = await db.query<Rollup>(
    `SELECT device_id, metric, bucket, sum(count)::int AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max FROM hourly_parts GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  );
  const exact = (r: Rollup) => [r.device_id, r.metric, r.bucket.getTime(), r.count, r.min, r.max];
  expect(rollups.map(exact)).toEqual(grouped.map(exact));
  rollups.forEach((row, i) => expect(row.sum).toBeCloseTo(grouped[i].sum, 6));
  return rollups;
}

/** No message was rejected as bad input (the load is all valid). */
export function expectNoRejections(metricsText: string): void {
  for (const reason of ['invalid_json', 'invalid_shape', 'invalid_timestamp']) {
    expect(metricValue(metricsText, 'telemetry_messages_rejected_total', { reason })).toBe(0);
  }
}
