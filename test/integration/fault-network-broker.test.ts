// The link between the service and its broker goes silent mid-load
// (docs/reliability.md, "Network faults"). Nothing is closed and nothing
// arrives: only the MQTT keepalive can tell (MQTT_KEEPALIVE_S, 2 s here: the
// client gives up after 1.5 × keepalive without a PINGRESP). The service must
// notice within that time (/health mqtt down), keep reconnecting while the
// link is silent, and when it returns resume its persistent session: the
// broker redelivers what was never acknowledged, and every message is stored
// exactly once.
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

const REDIS_DB = 15;
const KEEPALIVE_S = 2;
const MAX_PENDING = 2000;

describeWithServers(['postgres', 'redis'])('broker link blackholed (proxy between the service and Mosquitto)', () => {
  const startRig = useNetworkRigs();

  it('notices within the keepalive, reconnects with its persistent session, and stores every message once', async () => {
    const load = createLoad({ prefix: 'nbk', messages: 8000, devices: 100 });
    const rig = await startRig({
      label: 'net_broker',
      redisDb: REDIS_DB,
      env: { MQTT_KEEPALIVE_S: String(KEEPALIVE_S), INGEST_MAX_PENDING_MESSAGES: String(MAX_PENDING) },
    });
    const { app, db, device, proxies } = rig;

    const progress = newProgress();
    const published = publishWindowed(device, load, { window: 500, ratePerSec: 800 }, progress);
    published.catch(() => undefined);
    await waitFor(async () => (await sampleCount(db)) >= 1000 * METRICS.length, 20_000, 'part of the load committed');

    const watch = watchApp(app, 200);
    await sleep(300);
    proxies.mqtt.blackhole();
    const blackholedAt = Date.now();
    await waitFor(async () => !(await app.fetch('/health')).ok, 15_000, '/health to report the broker down');
    const noticedAfterMs = Date.now() - blackholedAt;
    await sleep(6000 - noticedAfterMs);
    const stillDown = await app.fetch('/health');
    proxies.mqtt.pass();
    const returnedAt = Date.now();

    await published;
    await waitUntilStored(db, load, app, 60_000);
    const storedAfterMs = Date.now() - returnedAt;
    const final = await waitUntilIdle(app);
    const seen = await watch.stop();

    // Keepalive: no PINGRESP within 1.5 × keepalive (checked every keepalive / 2), plus a scrape.
    expect(noticedAfterMs).toBeLessThanOrEqual((1.5 * KEEPALIVE_S + KEEPALIVE_S / 2) * 1000 + 1000);
    expect(stillDown.status).toBe(503);
    const body = (await stillDown.json()) as { checks: Record<string, { status: string }> };
    expect(body.checks.mqtt.status).toBe('down');
    expect(body.checks.postgres.status).toBe('up');

    // Reconnected into the same session (the broker kept its queue), subscribed again.
    const subscribed = app.logRecords().filter((r) => r.msg === 'subscribed');
    expect(subscribed.length).toBeGreaterThanOrEqual(2);
    expect(subscribed[subscribed.length - 1].sessionPresent).toBe(true);
    expect(app.logRecords().some((r) => r.msg === 'MQTT broker disconnected')).toBe(true);

    expect(Math.max(...seen.map((s) => s.pending))).toBeLessThanOrEqual(MAX_PENDING);
    expect(await partialMessages(db)).toBe(0);
    await verifyStoredExactlyOnce(db, load);
    expectNoRejections(final);
    process.stdout.write(`fault-network-broker: ${JSON.stringify({ noticedAfterMs, storedAfterMs, reconnects: subscribed.length - 1 })}\n`);
  }, 120_000);
});
