// The PostgreSQL link goes silent or slow mid-load (docs/reliability.md,
// "Network faults"). The BUILT service runs with its database link through a
// FaultProxy (network-fault-rig.ts); QoS 1 load through a private Mosquitto.
//
// Blackholed for 15 s (no reset: packets dropped): the batch write in flight
// and every new connection time out instead of hanging (QUERY_TIMEOUT_MS,
// connectionTimeoutMillis), nothing is committed or acknowledged meanwhile,
// GET /health answers 503 with postgres down within 2 s, the service holds at
// most INGEST_MAX_PENDING_MESSAGES, and when the link returns ingestion
// resumes by itself on fresh connections (the hung ones were discarded):
// every point stored once, rollups exact.
//
// Slow (+200 ms each way): throughput falls, batches grow, nothing is lost.
import { waitFor } from '../support/free-port';
import {
  METRICS,
  createLoad,
  expectNoRejections,
  ingested,
  newProgress,
  partialMessages,
  publishWindowed,
  sampleCount,
  verifyStoredExactlyOnce,
  waitUntilIdle,
  waitUntilStored,
} from '../support/load-check';
import { histogramMean, sleep, useNetworkRigs, watchApp } from '../support/network-fault-rig';
import { describeWithServers } from '../support/servers';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('fault');

const REDIS_DB = 8;
const MB = 1024 * 1024;

describeWithServers(['postgres', 'redis'])('PostgreSQL link faults (proxy between the service and PostgreSQL)', () => {
  const startRig = useNetworkRigs();

  it('blackholed for 15 s: writes time out, nothing is acknowledged, /health is down, pending memory is bounded, ingestion resumes by itself', async () => {
    const MAX_PENDING = 1000;
    const OUTAGE_MS = 15_000;
    const load = createLoad({ prefix: 'npg', messages: 12_000, devices: 100 });
    const rig = await startRig({ label: 'net_pg_blackhole', redisDb: REDIS_DB, env: { INGEST_MAX_PENDING_MESSAGES: String(MAX_PENDING) } });
    const { app, db, device, proxies } = rig;

    const progress = newProgress();
    const published = publishWindowed(device, load, { window: 500, ratePerSec: 600 }, progress);
    published.catch(() => undefined); // awaited below
    await waitFor(async () => (await sampleCount(db)) >= 1000 * METRICS.length, 20_000, 'part of the load committed');

    const watch = watchApp(app, 200);
    await sleep(400);
    const blackholedAt = Date.now();
    proxies.postgres.blackhole();
    await sleep(OUTAGE_MS);
    const samplesAtReturn = await sampleCount(db);
    proxies.postgres.pass();
    const returnedAt = Date.now();

    await waitFor(async () => (await app.fetch('/health')).status === 200, 20_000, '/health 200 again');
    const healthyAfterMs = Date.now() - returnedAt;
    await published;
    await waitUntilStored(db, load, app, 60_000);
    const resumedAfterMs = Date.now() - returnedAt;
    const final = await waitUntilIdle(app);
    const seen = await watch.stop();

    const before = seen.filter((s) => s.at < blackholedAt);
    // Scrapes wholly inside the outage: one that started before the link returned but was answered after it may see it back.
    const during = seen.filter((s) => s.at >= blackholedAt && s.doneAt < returnedAt);
    expect(before.length).toBeGreaterThan(0);
    // A scrape takes up to the health check's 1 s timeout while PostgreSQL is silent.
    expect(during.length).toBeGreaterThan(8);
    expect(app.running).toBe(true);

    // Down within the health check's own timeout (1 s) plus a scrape, and down until the link returned.
    const firstDown = during.findIndex((s) => s.healthStatus === 503);
    expect(firstDown).toBeGreaterThanOrEqual(0);
    expect(during[firstDown].at - blackholedAt).toBeLessThanOrEqual(2500);
    for (const s of during.slice(firstDown)) {
      expect(s.healthStatus).toBe(503);
      expect(s.health?.checks?.postgres.status).toBe('down');
    }

    // Nothing committed, so nothing acknowledged (PUBACK only after commit), after the first second:
    // at most the write already on the server when the link went silent may have landed.
    const settled = during.filter((s) => s.at - blackholedAt >= 1000);
    expect(new Set(settled.map((s) => s.ingested)).size).toBe(1);
    expect(samplesAtReturn).toBeLessThanOrEqual(before[before.length - 1].ingested + 1250 * METRICS.length);

    // Bounded: the gauge never passes the limit, the service stops taking messages once it is
    // reached (the publisher kept going, the broker holds the rest), RSS stays flat.
    expect(Math.max(...seen.map((s) => s.pending))).toBeLessThanOrEqual(MAX_PENDING);
    const tail = during.filter((s) => s.at - blackholedAt >= OUTAGE_MS - 4000);
    expect(tail.length).toBeGreaterThanOrEqual(2);
    expect(tail.every((s) => s.pending === MAX_PENDING)).toBe(true);
    expect(new Set(tail.map((s) => s.received)).size).toBe(1);
    const baseRss = Math.max(...before.map((s) => s.rssBytes));
    expect(Math.max(...seen.map((s) => s.rssBytes))).toBeLessThanOrEqual(baseRss + 100 * MB);

    // Writes timed out instead of hanging: logged unreachable once, reachable again once.
    const messages = app.logRecords().map((r) => r.msg);
    expect(messages.filter((m) => m === 'PostgreSQL unreachable')).toHaveLength(1);
    expect(messages.filter((m) => m === 'PostgreSQL reachable again')).toHaveLength(1);
    const unreachable = app.logRecords().find((r) => r.msg === 'PostgreSQL unreachable');
    expect(String(unreachable?.error)).toMatch(/timed out|timeout/i);

    expect(await partialMessages(db)).toBe(0);
    await verifyStoredExactlyOnce(db, load);
    expectNoRejections(final);
    process.stdout.write(
      `fault-network-postgres blackhole: ${JSON.stringify({ healthyAfterMs, resumedAfterMs, downAfterMs: during[firstDown].at - blackholedAt, maxPending: Math.max(...seen.map((s) => s.pending)), rssMB: Math.round(Math.max(...seen.map((s) => s.rssBytes)) / MB) })}\n`,
    );
  }, 120_000);

  it('slow (+200 ms each way): throughput falls, batches grow, nothing is lost', async () => {
    const RATE = 1500;
    const load = createLoad({ prefix: 'nps', messages: 10_500, devices: 100 });
    // Small batches make the link's round trip the limit: 2 writers × 200 messages / ≥ 0.4 s.
    const rig = await startRig({ label: 'net_pg_slow', redisDb: REDIS_DB, env: { INGEST_MAX_BATCH_SAMPLES: '800', INGEST_MAX_PENDING_MESSAGES: '3000' } });
    const { app, db, device, proxies } = rig;
    const watch = watchApp(app, 250);

    const progress = newProgress();
    const published = publishWindowed(device, load, { window: 1000, ratePerSec: RATE }, progress);
    published.catch(() => undefined);
    await sleep(1000);
    const passStart = { text: await app.metrics(), at: Date.now() };
    await sleep(2000);
    const passEnd = { text: await app.metrics(), at: Date.now() };
    proxies.postgres.delay(200);
    await sleep(1000); // let writes started before the change finish
    const slowStart = { text: await app.metrics(), at: Date.now() };
    await sleep(3000);
    const slowEnd = { text: await app.metrics(), at: Date.now() };
    proxies.postgres.pass();

    await published;
    await waitUntilStored(db, load, app, 60_000);
    const final = await waitUntilIdle(app);
    const seen = await watch.stop();

    const rate = (a: { text: string; at: number }, b: { text: string; at: number }) =>
      ((ingested(b.text) - ingested(a.text)) / METRICS.length / (b.at - a.at)) * 1000;
    const passRate = rate(passStart, passEnd);
    const slowRate = rate(slowStart, slowEnd);
    const passBatch = histogramMean(passStart.text, passEnd.text, 'telemetry_ingest_batch_size');
    const slowBatch = histogramMean(slowStart.text, slowEnd.text, 'telemetry_ingest_batch_size');
    process.stdout.write(`fault-network-postgres slow: ${JSON.stringify({ passRate, slowRate, passBatch, slowBatch })}\n`);

    // At most 2 writers × 800 samples per ≥ 400 ms round trip = 1000 messages/s, below the 1500/s offered.
    expect(slowRate).toBeLessThan(passRate * 0.8);
    expect(slowRate).toBeGreaterThan(0);
    expect(slowBatch).toBeGreaterThan(passBatch * 2);
    expect(slowBatch).toBeGreaterThan(400);
    expect(Math.max(...seen.map((s) => s.pending))).toBeLessThanOrEqual(3000);
    expect(seen.every((s) => s.healthStatus === 200)).toBe(true);

    expect(await partialMessages(db)).toBe(0);
    await verifyStoredExactlyOnce(db, load);
    expectNoRejections(final);
  }, 120_000);
});
