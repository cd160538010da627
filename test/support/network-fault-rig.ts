// The set-up shared by the network-fault scenarios (fault-network-*.test.ts):
// the BUILT service as a child process whose PostgreSQL, Redis and broker
// links each run through a FaultProxy, so a test can blackhole, slow down or
// reset one link while the others work.
//
//   service ──proxy──▶ shared PostgreSQL (a database of the file's own)
//           ──proxy──▶ shared Redis (a db number of the file's own, flushed)
//           ──proxy──▶ private Mosquitto ◀── test publisher (direct, no proxy)
//
//   await buildService();                               // beforeAll
//   const rig = await startNetworkRig({ label: 'net-pg', redisDb: 8, env: {...} });
//   rig.proxies.postgres.blackhole(); ... rig.app, rig.db, rig.device ...
//   const watch = watchApp(rig.app);  ...  const seen = await watch.stop();
//   await rig.destroy();                                // afterAll
import Redis from 'ioredis';
import type { MqttClient } from 'mqtt';
import { existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AppEnv, type AppProcess, BUILT_ENTRY, buildService, metricValue, startAppProcess } from './app-process';
import { FaultProxy } from './fault-proxy';
import { PrivateMosquitto } from './private-mosquitto';
import { connectDevice } from './publisher';
import { SHARED_POSTGRES_URL, SHARED_REDIS_URL } from './servers';
import { createTestDatabase, type TestDatabase } from './test-database';

/**
 * buildService() once per Jest process rather than once per file: the four
 * scenario files run in the same process (--runInBand) and each build costs
 * 10-20 s on a busy machine. Jest resets modules between files, so the
 * marker is a file named after this process.
 */
export async function buildServiceOnce(): Promise<void> {
  // pid and start time: a later process that reuses the pid builds again.
  const startedAt = Math.round((Date.now() - process.uptime() * 1000) / 10_000);
  const marker = join(tmpdir(), `telemetry-hub-built-${process.pid}-${startedAt}`);
  if (existsSync(marker) && existsSync(BUILT_ENTRY)) return;
  await buildService();
  writeFileSync(marker, String(Date.now()));
}

export interface RigOptions {
  /** Names the test database, the instance and the clients. */
  label: string;
  /** Redis database number on the shared server, used by this file alone (flushed before and after). */
  redisDb: number;
  /** Extra service environment (INGEST_MAX_PENDING_MESSAGES, MQTT_KEEPALIVE_S, ...). */
  env?: AppEnv;
}

export interface Proxies {
  postgres: FaultProxy;
  redis: FaultProxy;
  mqtt: FaultProxy;
}

export interface NetworkRig {
  db: TestDatabase;
  broker: PrivateMosquitto;
  proxies: Proxies;
  app: AppProcess;
  /** A device connected straight to the broker (its link is never faulted). */
  device: MqttClient;
  /** A client on the service's Redis database, straight to the server. */
  redis: Redis;
  destroy(): Promise<void>;
}

export async function startNetworkRig(options: RigOptions): Promise<NetworkRig> {
  const redisUrl = `${SHARED_REDIS_URL}/${options.redisDb}`;
  const cleanups: Array<() => Promise<unknown>> = [];
  const destroy = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  };
  try {
    const db = await createTestDatabase(options.label);
    cleanups.push(() => db.drop());
    const broker = await PrivateMosquitto.start();
    cleanups.push(() => broker.destroy());
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    cleanups.push(async () => {
      await redis.flushdb();
      redis.disconnect();
    });
    await redis.flushdb();
    const proxies: Proxies = {
      postgres: await FaultProxy.forUrl(SHARED_POSTGRES_URL),
      redis: await FaultProxy.forUrl(redisUrl),
      mqtt: await FaultProxy.forUrl(broker.url),
    };
    cleanups.push(() => Promise.all(Object.values(proxies).map((p: FaultProxy) => p.close())));
    const app = await startAppProcess({
      DATABASE_URL: proxies.postgres.rewrite(db.url),
      REDIS_URL: proxies.redis.rewrite(redisUrl),
      MQTT_URL: proxies.mqtt.rewrite(broker.url),
      INSTANCE_ID: `${options.label}-${process.pid}`,
      ...options.env,
    });
    cleanups.push(() => app.stop());
    await app.waitForOutput(/"msg":"subscribed"/, 15_000);
    const device = await connectDevice(broker.url, { clientId: `${options.label}-publisher-${process.pid}` });
    cleanups.push(() => device.endAsync(true));
    return { db, broker, proxies, app, device, redis, destroy };
  } catch (error) {
    await destroy();
    throw error;
  }
}

export interface AppSample {
  /** When the scrape started and when both answers were in: what it saw lies between the two. */
  at: number;
  doneAt: number;
  pending: number;
  rssBytes: number;
  received: number;
  ingested: number;
  healthStatus: number;
  health: { status?: string; checks?: Record<string, { status: string }> } | undefined;
}

/**
 * Scrapes /metrics and /health every `intervalMs` until stopped: what the
 * service held (pending gauge, RSS) and said (health) through a fault.
 */
export function watchApp(app: AppProcess, intervalMs = 200): { samples: AppSample[]; stop(): Promise<AppSample[]> } {
  const samples: AppSample[] = [];
  let running = true;
  const loop = (async () => {
    while (running && app.running) {
      const at = Date.now();
      try {
        const [text, health] = await Promise.all([
          app.metrics(),
          app
            .fetch('/health', { signal: AbortSignal.timeout(3000) })
            .then(async (r) => ({ status: r.status, body: (await r.json().catch(() => undefined)) as AppSample['health'] })),
        ]);
        samples.push({
          at,
          doneAt: Date.now(),
          pending: metricValue(text, 'telemetry_ingest_pending_messages'),
          rssBytes: metricValue(text, 'process_resident_memory_bytes'),
          received: metricValue(text, 'telemetry_messages_received_total'),
          ingested: metricValue(text, 'telemetry_samples_ingested_total'),
          healthStatus: health.status,
          health: health.body,
        });
      } catch {
        // a scrape that failed is simply missing; the assertions use what was seen
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, intervalMs - (Date.now() - at))));
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** Mean of a Prometheus histogram between two scrapes (sum and count deltas). */
export function histogramMean(before: string, after: string, name: string): number {
  const count = metricValue(after, `${name}_count`) - metricValue(before, `${name}_count`);
  const sum = metricValue(after, `${name}_sum`) - metricValue(before, `${name}_sum`);
  return count === 0 ? 0 : sum / count;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * For a describe block of network-fault scenarios: builds the service once,
 * and returns a `start` whose rigs are destroyed after each test.
 */
export function useNetworkRigs(): (options: RigOptions) => Promise<NetworkRig> {
  const started: NetworkRig[] = [];
  beforeAll(() => buildServiceOnce(), 120_000);
  afterEach(async () => {
    for (const rig of started.splice(0)) await rig.destroy();
  }, 60_000);
  return async (options) => {
    const rig = await startNetworkRig(options);
    started.push(rig);
    return rig;
  };
}
