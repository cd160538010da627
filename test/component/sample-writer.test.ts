// SampleWriter on the real PostgreSQL (its own database), without MQTT or the
// batcher: what one write stores, what it reports as new, and what it does to
// the rollups and the devices table when batches repeat, overlap or are huge.
import { HourlyFolder } from '../../src/storage/hourly-folder';
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
  let folder: HourlyFolder;

  beforeAll(async () => {
    db = await createTestDatabase('component_writer');
    component = await startComponent({ env: { DATABASE_URL: db.url }, imports: [StorageModule] });
    writer = component.get(SampleWriter);
    folder = component.get(HourlyFolder);
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
      `SELECT sum(count)::int AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max FROM hourly_parts WHERE device_id = 'hb-1'`,
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

  describe('the hourly tier filled by folding quiet minutes', () => {
    const hourly = (deviceId: string) =>
      db.query<{ bucket: Date; count: number; sum: number; min: number; max: number }>(
        `SELECT bucket, count::int AS count, sum, min, max FROM hourly_aggregates WHERE device_id = $1 ORDER BY bucket`,
        [deviceId],
      );
    const unfolded = async (deviceId: string) =>
      (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM minute_aggregates WHERE device_id = $1 AND NOT folded`, [deviceId]))[0].n;

    it('a batch leaves the hourly table alone; folding moves its minutes there once, and the tier reads the same before and after', async () => {
      const bucket = hourBase + 3 * HOUR;
      const batch = samples(['fold-1'], ['t', 'h'], [bucket + 1000, bucket + 61_000, bucket + 3_599_000]);
      await writer.write(batch, seenAt(batch, Date.now()));
      expect(await hourly('fold-1')).toEqual([]);
      expect(await unfolded('fold-1')).toBe(6);
      const before = await expectRollupsEqualGroupBy(db);

      // Not quiet yet: nothing moves.
      expect(await folder.fold(60_000)).toBe(0);
      expect(await folder.fold(0)).toBeGreaterThanOrEqual(6);
      expect(await unfolded('fold-1')).toBe(0);
      expect((await hourly('fold-1')).map((r) => r.count)).toEqual([3, 3]); // t and h, one hour each
      expect(await expectRollupsEqualGroupBy(db)).toEqual(before);

      // Folding again adds nothing.
      await folder.fold(0);
      expect((await hourly('fold-1')).map((r) => r.count)).toEqual([3, 3]); // t and h, one hour each
    });

    it('a sample for a minute already folded goes to the hourly row directly, once', async () => {
      const bucket = hourBase + 4 * HOUR;
      const first = samples(['fold-2'], ['t'], [bucket + 10_000], () => 1);
      await writer.write(first, seenAt(first, Date.now()));
      await folder.fold(0);
      const late = samples(['fold-2'], ['t'], [bucket + 20_000, bucket + 3_600_000 + 5000], () => 3);
      await writer.write(late, seenAt(late, Date.now()));
      // The folded minute's hour got the late sample; the new minute (next hour) waits to be folded.
      expect(await hourly('fold-2')).toEqual([{ bucket: new Date(bucket), count: 2, sum: 4, min: 1, max: 3 }]);
      expect(await unfolded('fold-2')).toBe(1);
      await expectRollupsEqualGroupBy(db);
      // A redelivery of the late batch changes nothing.
      await writer.write(late, seenAt(late, Date.now()));
      await folder.fold(0);
      expect((await hourly('fold-2')).map((r) => r.count)).toEqual([2, 1]);
      await expectRollupsEqualGroupBy(db);
    });

    it('folding while batches keep writing the same minutes loses and double-counts nothing', async () => {
      const bucket = hourBase + 1 * HOUR;
      const devices = Array.from({ length: 40 }, (_, i) => `fold-race-${i}`);
      let folding = true;
      const folds = (async () => {
        while (folding) await folder.fold(0);
      })();
      let t = 0;
      for (let round = 0; round < 30; round++) {
        // Every round hits the same few minutes of every device, new points each time.
        const batch = samples(devices, ['a', 'b'], [bucket + (t++ % 5) * 60_000 + round * 7, bucket + 30 * 60_000 + round]);
        await writer.write(batch, seenAt(batch, Date.now()));
      }
      folding = false;
      await folds;
      await folder.fold(0);
      const rows = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM minute_aggregates WHERE NOT folded AND device_id LIKE 'fold-race-%'`);
      expect(rows[0].n).toBe(0);
      const rollups = await expectRollupsEqualGroupBy(db);
      expect(rollups.filter((r) => r.device_id.startsWith('fold-race-')).reduce((n, r) => n + r.count, 0)).toBe(30 * 40 * 2 * 2);
    });
  });
});
