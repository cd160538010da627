// The Redis link goes silent mid-load (docs/reliability.md, "Network faults").
// Unlike a dead Redis (connection refused at once) a blackholed one answers
// nothing and closes nothing: every command waits for the client's command
// timeout, and the connection stays "open" after the network is back.
// Meanwhile every route answers within its normal latency + 100 ms from the
// memory fallback (+150 ms allowance for CI noise, as in cache-faults), /health
// is degraded, ingestion is unaffected; when the link returns the service drops
// the hung connections, reconnects and re-syncs: values written to the memory
// cache during the outage are not served from stale Redis entries afterwards.
import { metricValue } from '../support/app-process';
import { waitFor } from '../support/free-port';
import {
  type Load,
  createLoad,
  expectNoRejections,
  newProgress,
  publishWindowed,
  verifyStoredExactlyOnce,
  waitUntilIdle,
  waitUntilStored,
} from '../support/load-check';
import { useNetworkRigs, watchApp } from '../support/network-fault-rig';
import { describeWithServers } from '../support/servers';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('fault');

const REDIS_DB = 9;
const CONTRACT_ALLOWANCE_MS = 100;
const CI_NOISE_MS = 150;

describeWithServers(['postgres', 'redis'])('Redis link blackholed (proxy between the service and Redis)', () => {
  const startRig = useNetworkRigs();

  it('answers from memory within normal latency + 100 ms, stays degraded, ingests everything, and re-syncs after the link returns', async () => {
    const DEVICES = 20;
    const load = createLoad({ prefix: 'nrd', messages: 4000, devices: DEVICES });
    const half = (from: number, to: number): Load => ({
      ...load,
      messages: to - from,
      expectedSamples: (to - from) * 4,
      points: load.points.slice(from, to),
      packets: load.packets.slice(from, to),
    });
    const firstHalf = half(0, 2000);
    const secondHalf = half(2000, 4000);
    const devices = [...new Set(load.points.map((p) => p.deviceId))];
    // A long latest TTL: a stale Redis entry from before the outage would still be there to serve.
    const rig = await startRig({ label: 'net_redis', redisDb: REDIS_DB, env: { CACHE_TTL_LATEST_S: '300' } });
    const { app, db, device, proxies, redis } = rig;

    const routes = [
      ...devices.slice(0, 5).map((id) => `/api/devices/${id}/latest`),
      `/api/devices/${devices[0]}/stats`,
      '/api/devices?limit=10',
      '/api/dashboard/metrics',
    ];
    const timedGet = async (path: string) => {
      const started = performance.now();
      const res = await app.fetch(path);
      const body = (await res.json()) as Record<string, unknown>;
      return { path, status: res.status, body, ms: performance.now() - started };
    };

    // 1. Before: half the load stored, the cache warm in Redis, normal latency measured under load.
    const progress = newProgress();
    await publishWindowed(device, firstHalf, { window: 500, ratePerSec: 1000 }, progress);
    await waitUntilStored(db, firstHalf, app, 30_000);
    const [stored] = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM samples');
    expect({ stored: stored.n, log: stored.n === firstHalf.expectedSamples ? '' : app.tail() }).toEqual({ stored: firstHalf.expectedSamples, log: '' });
    for (const path of routes) await timedGet(path); // warm
    expect(await redis.exists(`telemetry:latest:{${devices[0]}}`)).toBe(1);
    const normal = new Map<string, number>();
    for (let round = 0; round < 5; round++) {
      for (const path of routes) {
        const r = await timedGet(path);
        expect(r.status).toBe(200);
        normal.set(path, Math.max(normal.get(path) ?? 0, r.ms));
      }
    }
    const staleLatest = await timedGet(`/api/devices/${devices[0]}/latest`);

    // 2. Blackhole Redis while the second half is published.
    const watch = watchApp(app, 250);
    proxies.redis.blackhole();
    const blackholedAt = Date.now();
    const publishing = publishWindowed(device, secondHalf, { window: 500, ratePerSec: 500 }, newProgress());
    publishing.catch(() => undefined);
    const slow: string[] = [];
    let requests = 0;
    while (Date.now() - blackholedAt < 5000) {
      for (const path of routes) {
        const r = await timedGet(path);
        requests++;
        expect(r.status).toBe(200);
        const bound = (normal.get(path) as number) + CONTRACT_ALLOWANCE_MS + CI_NOISE_MS;
        if (r.ms > bound) slow.push(`${path}: ${Math.round(r.ms)} ms > ${Math.round(bound)} ms`);
      }
    }
    expect(slow).toEqual([]);
    await publishing;
    await waitUntilStored(db, load, app, 30_000);
    // From memory, the newest values (written on ingest during the outage).
    const newest = await db.query<{ device_id: string; ts: Date }>('SELECT device_id, max(ts) AS ts FROM samples GROUP BY 1');
    for (const row of newest) {
      const r = await timedGet(`/api/devices/${row.device_id}/latest`);
      expect(r.body.ts).toBe(row.ts.toISOString());
    }
    expect(metricValue(await app.metrics(), 'telemetry_cache_backend_up')).toBe(0);
    const outageHealth = await app.fetch('/health');
    expect(outageHealth.status).toBe(200);
    expect(((await outageHealth.json()) as { status: string }).status).toBe('degraded');

    // 3. The link returns: the service finds out by itself and uses Redis again.
    proxies.redis.pass();
    const returnedAt = Date.now();
    await waitFor(async () => metricValue(await app.metrics(), 'telemetry_cache_backend_up') === 1, 20_000, 'Redis in use again');
    const recoveredAfterMs = Date.now() - returnedAt;
    const seen = await watch.stop();

    // Re-synced: nothing from before the outage is served, for any device.
    expect(staleLatest.body.ts).not.toBe(newest.find((r) => r.device_id === devices[0])?.ts.toISOString());
    for (const row of newest) {
      const r = await timedGet(`/api/devices/${row.device_id}/latest`);
      expect(r.body.ts).toBe(row.ts.toISOString());
    }
    const health = await app.fetch('/health');
    expect(((await health.json()) as { status: string }).status).toBe('ok');
    expect(seen.every((s) => s.healthStatus === 200)).toBe(true);

    const final = await waitUntilIdle(app);
    await verifyStoredExactlyOnce(db, load);
    expectNoRejections(final);
    process.stdout.write(
      `fault-network-redis: ${JSON.stringify({ requests, recoveredAfterMs, normalMs: Object.fromEntries([...normal].map(([k, v]) => [k, Math.round(v)])) })}\n`,
    );
  }, 120_000);
});
