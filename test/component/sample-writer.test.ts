// SampleWriter on the real PostgreSQL (its own database), without MQTT or the
// batcher: what one write stores, what it reports as new, and what it does to
// the rollups and the devices table when batches repeat, overlap or are huge.
import { SampleWriter } from '../../src/storage/sample-writer';
import { StorageModule } from '../../src/storage/storage.module';
import type { DeviceSeen, Sample } from '../../src/telemetry/sample';
import { type Component, startComponent } from '../support/component';
import { expectRollupsEqualGroupBy, sampleCount } from '../support/load-check';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const HOUR = 3_600_000;
const hourBase = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR;

/** One sample per (device, metric, ts); values are multiples of 1/4 so sums are exact in any order. */
function samples(deviceIds: string[], metrics: string[], times: number[], value = (i: number) => i / 4): Sample[] {
  const out: Sample[] = [];
  for (const deviceId of deviceIds) for (const metric of metrics) for (const ts of times) out.push({ deviceId, metric, ts, value: value(out.length) });
  return out;
}

/** The devices of a batch, seen at `at` (epoch ms). */
const seenAt = (list: readonly Sample[], at: number): DeviceSeen[] =>
  [...new Set(list.map((s) => s.deviceId))].map((deviceId) => ({ deviceId, firstSeenMs: at, lastSeenMs: at }));

const key = (s: Sample) => `${s.deviceId}|${s.metric}|${s.ts}`;

describeWithServers(['postgres'])('SampleWriter (component, real PostgreSQL)', () => {
  let db: TestDatabase;
  let component: Component;
  let writer: SampleWriter;

  beforeAll(async () => {
    db = await createTestDatabase('component_writer');
    component = await startComponent({ env: { DATABASE_URL: db.url }, imports: [StorageModule] });
    writer = component.get(SampleWriter);
  });

  afterAll(async () => {
    await component?.close();
    await db?.drop();
  });

  const storedValues = async (deviceIds: string[]) =>
    db.query<{ device_id: string; metric: string; ts: Date; value: number }>(
      `SELECT device_id, metric, ts, value FROM samples WHERE device_id = ANY($1) ORDER BY 1, 2, 3`,
      [deviceIds],
    );

  it('a redelivered batch stores nothing, reports nothing new, and leaves the rollups equal to GROUP BY', async () => {
    const batch = samples(
      ['rd-1', 'rd-2'],
      ['t', 'h'],
      [0, 1, 2, 3].map((i) => hourBase + i * 20 * 60_000),
    );
    const first = await writer.write(batch, seenAt(batch, Date.now()));
    expect(first.map(key)).toEqual(batch.map(key));

    const again = await writer.write(batch, seenAt(batch, Date.now()));
    expect(again).toEqual([]);
    // The same points with other values: still the first values stored.
    const changed = batch.map((s) => ({ ...s, value: s.value + 1000 }));
    expect(await writer.write(changed, seenAt(changed, Date.now()))).toEqual([]);

    const rows = await storedValues(['rd-1', 'rd-2']);
    expect(rows).toHaveLength(batch.length);
    const want = new Map(batch.map((s) => [key(s), s.value]));
    for (const r of rows) expect(r.value).toBe(want.get(`${r.device_id}|${r.metric}|${r.ts.getTime()}`));
    await expectRollupsEqualGroupBy(db);
  });

  it('an overlapping batch with duplicates inside it reports exactly the points it newly stored, first one sent wins', async () => {
    const times = [0, 1, 2, 3, 4, 5].map((i) => hourBase + HOUR + i * 15 * 60_000);
    const earlier = samples(['ov-1'], ['t'], times.slice(0, 3));
    await writer.write(earlier, seenAt(earlier, Date.now()));

    const later = samples(['ov-1'], ['t'], times.slice(2), (i) => 100 + i); // times[2] already stored
    const twice = { ...later[1], value: -7 }; // same point as later[1], sent after it
    const batch = [...later, twice, ...earlier]; // and a redelivery of the first batch
    const reported = await writer.write(batch, seenAt(batch, Date.now()));

    expect(reported.map(key)).toEqual(later.slice(1).map(key));
    expect(reported.map((s) => s.value)).toEqual(later.slice(1).map((s) => s.value));
    const rows = await storedValues(['ov-1']);
    expect(rows.map((r) => [r.ts.getTime(), r.value])).toEqual([...earlier, ...later.slice(1)].map((s) => [s.ts, s.value]));
    await expectRollupsEqualGroupBy(db);
  });

  it('a redelivered batch into the same hour as new points does not double-count that hour', async () => {
    const bucket = hourBase + 2 * HOUR;
    const a = samples(['hb-1'], ['v'], [bucket + 1000, bucket + 2000], () => 2.5);
    await writer.write(a, seenAt(a, Date.now()));
    const b = [...a, ...samples(['hb-1'], ['v'], [bucket + 3000], () => -1.25)];
    expect((await writer.write(b, seenAt(b, Date.now()))).map(key)).toEqual([key(b[2])]);
    const [rollup] = await db.query<{ count: number; sum: number; min: number; max: number }>(
      `SELECT count::int AS count, sum, min, max FROM hourly_aggregates WHERE device_id = 'hb-1'`,
    );
    expect(rollup).toEqual({ count: 3, sum: 3.75, min: -1.25, max: 2.5 });
  });

  it("keeps a device's first_seen at the earliest and last_seen at the latest time it was heard from, in any order", async () => {
    const base = Date.now() - 10 * 60_000;
    const point = (n: number) => samples(['seen-1'], ['t'], [hourBase + n]);
    const device = async () => {
      const [row] = await db.query<{ first_seen: Date; last_seen: Date }>(`SELECT first_seen, last_seen FROM devices WHERE id = 'seen-1'`);
      return { first: row.first_seen.getTime(), last: row.last_seen.getTime() };
    };
    await writer.write(point(1), [{ deviceId: 'seen-1', firstSeenMs: base + 60_000, lastSeenMs: base + 120_000 }]);
    expect(await device()).toEqual({ first: base + 60_000, last: base + 120_000 });

    // Later: last_seen moves on, first_seen stays.
    await writer.write(point(2), [{ deviceId: 'seen-1', firstSeenMs: base + 300_000, lastSeenMs: base + 360_000 }]);
    expect(await device()).toEqual({ first: base + 60_000, last: base + 360_000 });

    // A batch committed late (e.g. a retry) with older times: first_seen moves back, last_seen does not.
    await writer.write(point(3), [{ deviceId: 'seen-1', firstSeenMs: base, lastSeenMs: base + 30_000 }]);
    expect(await device()).toEqual({ first: base, last: base + 360_000 });

    // Only duplicates, yet the device was heard from: last_seen still moves on.
    await writer.write(point(3), [{ deviceId: 'seen-1', firstSeenMs: base + 500_000, lastSeenMs: base + 500_000 }]);
    expect(await device()).toEqual({ first: base, last: base + 500_000 });
  });

  it('writes a batch far beyond 65,535 bind parameters in one call, rollups exact', async () => {
    const deviceIds = Array.from({ length: 500 }, (_, i) => `big-${String(i).padStart(3, '0')}`);
    const times = Array.from({ length: 40 }, (_, i) => hourBase + i * 7 * 60_000); // 40 points over ~4.5 hours
    const batch = samples(deviceIds, ['t', 'h', 'p', 'v'], times, (i) => (i % 97) / 8);
    expect(batch.length).toBe(80_000); // 4 columns each: 320,000 values
    const before = await sampleCount(db);

    const reported = await writer.write(batch, seenAt(batch, Date.now()));

    expect(reported.length).toBe(batch.length);
    expect((await sampleCount(db)) - before).toBe(batch.length);
    const [devices] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM devices WHERE id LIKE 'big-%'`);
    expect(devices.n).toBe(deviceIds.length);
    const rollups = await expectRollupsEqualGroupBy(db);
    expect(rollups.filter((r) => r.device_id.startsWith('big-')).reduce((n, r) => n + r.count, 0)).toBe(batch.length);

    // The same batch again, in one call: nothing new.
    expect(await writer.write(batch, seenAt(batch, Date.now()))).toEqual([]);
    expect((await sampleCount(db)) - before).toBe(batch.length);
    await expectRollupsEqualGroupBy(db);
  }, 60_000);
});
