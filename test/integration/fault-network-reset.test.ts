// Reset storm mid-load (docs/reliability.md, "Network faults"): every
// connection to PostgreSQL, Redis and the broker is reset (RST) once a second
// for 10 s, the links working in between, as behind a flapping firewall or a
// restarting load balancer. Writes fail half-way, PUBACKs are lost with their
// connection, Redis commands fail: afterwards the service is healthy again by
// itself, every published point is stored exactly once with exact rollups,
// and it never held more than INGEST_MAX_PENDING_MESSAGES.
import { waitFor } from '../support/free-port';
import {
  METRICS,
  createLoad,
  expectNoRejections,
  newProgress,
  partialMessages,
  publishWindowed,
  sampleCount,
  verifyStoredExactlyOnce,
  waitUntilIdle,
  waitUntilStored,
} from '../support/load-check';
import { sleep, useNetworkRigs, watchApp } from '../support/network-fault-rig';
import { describeWithServers } from '../support/servers';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('fault');

const REDIS_DB = 4;
const MAX_PENDING = 2000;
const MB = 1024 * 1024;

describeWithServers(['postgres', 'redis'])('reset storm on every link (proxies between the service and PostgreSQL, Redis, Mosquitto)', () => {
  const startRig = useNetworkRigs();

  it('connections reset every second for 10 s: healthy again afterwards, every point stored once', async () => {
    const load = createLoad({ prefix: 'nrs', messages: 9000, devices: 100 });
    const rig = await startRig({ label: 'net_reset', redisDb: REDIS_DB, env: { INGEST_MAX_PENDING_MESSAGES: String(MAX_PENDING) } });
    const { app, db, device, proxies } = rig;

    const progress = newProgress();
    const published = publishWindowed(device, load, { window: 500, ratePerSec: 700 }, progress);
    published.catch(() => undefined);
    await waitFor(async () => (await sampleCount(db)) >= 1000 * METRICS.length, 20_000, 'part of the load committed');

    const watch = watchApp(app, 250);
    await sleep(300);
    const links = [proxies.postgres, proxies.redis, proxies.mqtt];
    const stormStart = Date.now();
    for (let second = 0; second < 10; second++) {
      for (const proxy of links) proxy.reset();
      await sleep(stormStart + (second + 1) * 1000 - Date.now());
    }
    const resets = links.map((p) => p.counts.reset);
    const stormEnd = Date.now();

    await published;
    await waitUntilStored(db, load, app, 60_000);
    await waitFor(async () => (await app.fetch('/health')).status === 200, 20_000, '/health 200 after the storm');
    const health = (await (await app.fetch('/health')).json()) as { status: string };
    const final = await waitUntilIdle(app);
    const seen = await watch.stop();

    // The storm hit every link, more than once.
    for (const n of resets) expect(n).toBeGreaterThanOrEqual(5);
    expect(app.running).toBe(true);
    expect(health.status).toBe('ok');
    expect(Math.max(...seen.map((s) => s.pending))).toBeLessThanOrEqual(MAX_PENDING);
    const baseRss = seen.filter((s) => s.at < stormStart).map((s) => s.rssBytes);
    expect(baseRss.length).toBeGreaterThan(0);
    expect(Math.max(...seen.map((s) => s.rssBytes))).toBeLessThanOrEqual(Math.max(...baseRss) + 100 * MB);

    expect(await partialMessages(db)).toBe(0);
    await verifyStoredExactlyOnce(db, load);
    expectNoRejections(final);
    process.stdout.write(
      `fault-network-reset: ${JSON.stringify({ resets, stormMs: stormEnd - stormStart, settledAfterStormMs: Date.now() - stormEnd, reconnects: app.logRecords().filter((r) => r.msg === 'subscribed').length - 1 })}\n`,
    );
  }, 120_000);
});
