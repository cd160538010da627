// TelemetryQueries on the real PostgreSQL (its own database, so fleet-wide
// figures are exact): every read on crafted data, written through the real
// SampleWriter so rollups are what production keeps. Every figure must be a
// JSON number (pg hands bigint/numeric over as strings).
import { SampleWriter } from '../../src/storage/sample-writer';
import { StorageModule } from '../../src/storage/storage.module';
import { TelemetryQueries } from '../../src/storage/telemetry-queries';
import type { Sample } from '../../src/telemetry/sample';
import { type Component, startComponent } from '../support/component';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';

const HOUR = 3_600_000;
const MIN = 60_000;

describeWithServers(['postgres'])('TelemetryQueries (component, real PostgreSQL)', () => {
  const now = Date.now();
  const currentHour = Math.floor(now / HOUR) * HOUR;
  /** Three whole hours back: inside the last 24 h, outside the last hour, never pro-rated. */
  const threeHoursAgo = currentHour - 3 * HOUR;
  const longAgo = currentHour - 30 * HOUR;
  let db: TestDatabase;
  let component: Component;
  let queries: TelemetryQueries;

  /**
   * dev-a: 300 temperature points in the last 3 s (this hour), humidity 3 h ago;
   * dev-b: 100 points in the last second; dev-c: heard from 30 h ago only.
   * Values are multiples of 1/4: sums and averages exact.
   */
  const recentA: Sample[] = Array.from({ length: 300 }, (_, i) => ({ deviceId: 'dev-a', metric: 'temperature', ts: now - i * 10, value: (i % 40) / 4 }));
  const oldA: Sample[] = [
    { deviceId: 'dev-a', metric: 'humidity', ts: threeHoursAgo + 5 * MIN, value: 40 },
    { deviceId: 'dev-a', metric: 'humidity', ts: threeHoursAgo + 35 * MIN, value: 41.5 },
    { deviceId: 'dev-a', metric: 'humidity', ts: threeHoursAgo + 65 * MIN, value: 39 }, // next hour bucket
  ];
  const recentB: Sample[] = Array.from({ length: 100 }, (_, i) => ({ deviceId: 'dev-b', metric: 'pressure', ts: now - i * 5, value: 1000 + i }));
  const oldC: Sample[] = [{ deviceId: 'dev-c', metric: 'temperature', ts: longAgo, value: 12 }];

  beforeAll(async () => {
    db = await createTestDatabase('component_queries');
    component = await startComponent({ env: { DATABASE_URL: db.url }, imports: [StorageModule] });
    queries = component.get(TelemetryQueries);
    const writer = component.get(SampleWriter);
    await writer.write([...recentA, ...oldA], [{ deviceId: 'dev-a', firstSeenMs: threeHoursAgo + 5 * MIN, lastSeenMs: now }]);
    await writer.write(recentB, [{ deviceId: 'dev-b', firstSeenMs: now - 1000, lastSeenMs: now }]);
    await writer.write(oldC, [{ deviceId: 'dev-c', firstSeenMs: longAgo, lastSeenMs: longAgo }]);
    // Devices with no samples at all, for paging (page-00 … page-11 sort after dev-c).
    await writer.write(
      [],
      Array.from({ length: 12 }, (_, i) => ({ deviceId: `page-${String(i).padStart(2, '0')}`, firstSeenMs: longAgo, lastSeenMs: longAgo })),
    );
  });

  afterAll(async () => {
    await component?.close();
    await db?.drop();
  });

  it('latest: the newest point of each metric, as numbers; an unknown device has none', async () => {
    expect(await queries.latest('dev-a')).toEqual({
      temperature: { ts: now, value: 0 },
      humidity: { ts: threeHoursAgo + 65 * MIN, value: 39 },
    });
    expect({ ...(await queries.latest('nobody')) }).toEqual({});
  });

  it('stats: per-metric count/min/max/avg over the last 24 h only, with first/last seen', async () => {
    const device = await queries.findDevice('dev-a');
    expect(device).toEqual({ id: 'dev-a', firstSeen: new Date(threeHoursAgo + 5 * MIN).toISOString(), lastSeen: new Date(now).toISOString() });
    const stats = await queries.stats(device!);
    const temps = recentA.map((s) => s.value);
    expect(stats).toEqual({
      deviceId: 'dev-a',
      firstSeen: device!.firstSeen,
      lastSeen: device!.lastSeen,
      sampleCount: 303,
      metrics: {
        temperature: { count: 300, min: Math.min(...temps), max: Math.max(...temps), avg: temps.reduce((a, b) => a + b, 0) / 300 },
        humidity: { count: 3, min: 39, max: 41.5, avg: (40 + 41.5 + 39) / 3 },
      },
    });
    // dev-c's only sample is 30 h old.
    const old = await queries.stats((await queries.findDevice('dev-c'))!);
    expect({ sampleCount: old.sampleCount, metrics: { ...old.metrics } }).toEqual({ sampleCount: 0, metrics: {} });
  });

  it('hourly: the buckets starting in [hour of from, to), ascending, with avg = sum / count', async () => {
    const buckets = await queries.hourly('dev-a', 'humidity', new Date(threeHoursAgo + 30 * MIN), new Date(currentHour));
    expect(buckets).toEqual([
      { bucket: new Date(threeHoursAgo).toISOString(), count: 2, min: 40, max: 41.5, avg: 40.75 },
      { bucket: new Date(threeHoursAgo + HOUR).toISOString(), count: 1, min: 39, max: 39, avg: 39 },
    ]);
    // `to` is exclusive: a range ending where the second bucket starts leaves it out.
    expect(await queries.hourly('dev-a', 'humidity', new Date(threeHoursAgo), new Date(threeHoursAgo + HOUR))).toHaveLength(1);
    expect(await queries.hourly('dev-a', 'nothing', new Date(longAgo), new Date(now + HOUR))).toEqual([]);
  });

  it('samples: newest first, limited, filtered by metric and by [from, to)', async () => {
    const from = new Date(threeHoursAgo);
    const to = new Date(now + 1);
    const newest = await queries.samples('dev-a', undefined, from, to, 5);
    expect(newest).toEqual(recentA.slice(0, 5).map((s) => ({ ts: new Date(s.ts).toISOString(), metric: 'temperature', value: s.value })));

    // Without a metric the limit applies across metrics: all 303, the humidity ones last.
    const all = await queries.samples('dev-a', undefined, from, to, 10_000);
    expect(all).toHaveLength(303);
    expect(all.slice(-3).map((s) => [s.metric, s.value])).toEqual([
      ['humidity', 39],
      ['humidity', 41.5],
      ['humidity', 40],
    ]);
    expect(all.every((s, i) => i === 0 || s.ts <= all[i - 1].ts)).toBe(true);

    const humidity = await queries.samples('dev-a', 'humidity', from, new Date(threeHoursAgo + 65 * MIN), 10);
    expect(humidity.map((s) => s.value)).toEqual([41.5, 40]); // `to` exclusive: the 39 at exactly `to` is out
    expect(humidity.every((s) => typeof s.value === 'number')).toBe(true);
  });

  it('listDevices: pages by id with limit/offset and the total', async () => {
    const first = await queries.listDevices(4, 0);
    expect(first.total).toBe(15);
    expect(typeof first.total).toBe('number');
    expect(first.items.map((d) => d.id)).toEqual(['dev-a', 'dev-b', 'dev-c', 'page-00']);
    const last = await queries.listDevices(4, 12);
    expect(last.items.map((d) => d.id)).toEqual(['page-09', 'page-10', 'page-11']);
    expect((await queries.listDevices(4, 15)).items).toEqual([]);
    expect(first.items[2]).toEqual({ id: 'dev-c', firstSeen: new Date(longAgo).toISOString(), lastSeen: new Date(longAgo).toISOString(), status: 'online' });
  });

  it('dashboard: exact fleet figures from the rollups, every one a number', async () => {
    const dashboard = await queries.dashboard();
    expect(dashboard).toEqual({
      devices: 15,
      activeDevices: 2, // dev-a and dev-b were heard from in the last 5 minutes
      samplesLastHour: 400,
      samplesLast24h: 403, // + dev-a's humidity; dev-c's sample is 30 h old
      ingestRatePerSec: Math.round((400 / 3600) * 100) / 100,
      topDevices: [
        { id: 'dev-a', samples: 303 },
        { id: 'dev-b', samples: 100 },
      ],
    });
  });

  it('deleteDevice: removes the device with its samples, rollups, alarms and alarm state, and says whether it existed', async () => {
    const [{ id: ruleId }] = await db.query<{ id: string }>(`INSERT INTO alarm_rules (metric, spec, version) VALUES ('temperature', '{}', 1) RETURNING id`);
    for (const device of ['dev-a', 'dev-b']) {
      await db.query(`INSERT INTO alarm_state (rule_id, device_id, open) VALUES ($1, $2, true)`, [ruleId, device]);
      await db.query(
        `INSERT INTO alarms (rule_id, device_id, metric, severity, status, raised_at, value) VALUES ($1, $2, 'temperature', 'warning', 'active', now(), 1)`,
        [ruleId, device],
      );
    }
    expect(await queries.deleteDevice('dev-b')).toBe(true);
    for (const table of ['alarms', 'alarm_state']) {
      expect(await db.query(`SELECT device_id FROM ${table} WHERE rule_id = $1`, [ruleId])).toEqual([{ device_id: 'dev-a' }]);
    }
    expect(await queries.findDevice('dev-b')).toBeNull();
    expect(await queries.samples('dev-b', undefined, new Date(longAgo), new Date(now + 1), 10)).toEqual([]);
    expect(await db.query(`SELECT 1 FROM hourly_aggregates WHERE device_id = 'dev-b'`)).toEqual([]);
    expect(await queries.deleteDevice('dev-b')).toBe(false);
    expect((await queries.listDevices(100, 0)).total).toBe(14);
  });
});
