// Fan-out on the real Redis when an instance is alone: it stops publishing
// batches that no other instance could receive (PUBLISH reached only its own
// subscriber), and a newly started instance's "hello" brings publishing back
// at once, long before the 5-second presence heartbeat.
import Redis from 'ioredis';
import { FanoutService } from '../../src/realtime/fanout.service';
import type { Sample } from '../../src/telemetry/sample';
import { freePort } from '../support/free-port';
import { PrivateRedis } from '../support/private-redis';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { WsTestClient } from '../support/ws-client';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('timing');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describeWithServers(['postgres', 'redis'])('fan-out presence on the real Redis', () => {
  const run = Math.random().toString(36).slice(2, 8);
  const deviceId = `presence-${run}`;
  const baseTs = Date.now() - 60_000;
  let server: PrivateRedis;
  let db: TestDatabase;
  let redis: Redis;
  let a: TestApp | undefined;
  let b: TestApp | undefined;
  let client: WsTestClient | undefined;

  const sample = (i: number): Sample[] => [{ deviceId, metric: 'temperature', ts: baseTs + i, value: i }];
  /** PUBLISH calls the server has run (a server of this file's own: the count is server-wide). */
  const publishes = async () => Number(/cmdstat_publish:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  const start = async (name: string) =>
    startTestApp({
      DATABASE_URL: db.url,
      REDIS_URL: server.url,
      MQTT_URL: undefined,
      MQTT_PORT: String(await freePort()),
      INSTANCE_ID: `${name}-${run}`,
    });

  beforeAll(async () => {
    server = await PrivateRedis.start();
    db = await createTestDatabase('fanout_presence');
    redis = new Redis(server.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    a = await start('presence-a');
    await sleep(300); // A's subscription is ready
  });

  afterAll(async () => {
    await client?.close();
    await b?.close();
    await a?.close();
    await redis?.quit().catch(() => undefined);
    await db?.drop();
    await server?.destroy();
  });

  it('a lone instance publishes no batches after the first finds nobody else listening', async () => {
    const fanout = (a as TestApp).get(FanoutService);
    fanout.publishCommitted(sample(0));
    await sleep(200);
    const before = await publishes();
    for (let i = 1; i <= 20; i++) fanout.publishCommitted(sample(i));
    await sleep(200);
    // At most one presence "hello" may fall into the window; 20 batches would be 20 PUBLISHes.
    expect((await publishes()) - before).toBeLessThanOrEqual(1);
  });

  it('a second instance says hello on start, and the first delivers to its clients again at once', async () => {
    b = await start('presence-b');
    client = await WsTestClient.connect(`${b.baseUrl.replace('http', 'ws')}/ws`);
    expect((await client.request('subscribe', { deviceId })).event).toBe('subscribed');
    const fanout = (a as TestApp).get(FanoutService);
    // Batches from A until one reaches the client on B; well under the heartbeat interval.
    let i = 100;
    const received = client.next((f) => f.event === 'sample' && f.data.deviceId === deviceId, 2500, 'a sample from A on B');
    const pump = setInterval(() => fanout.publishCommitted(sample(i++)), 50);
    try {
      const frame = await received;
      expect(frame.data.metrics.temperature).toBeGreaterThanOrEqual(100);
    } finally {
      clearInterval(pump);
    }
    // And every batch after that is delivered: A saw a receiver besides itself.
    const next = i + 1;
    await sleep(100);
    fanout.publishCommitted(sample(next));
    await client.next((f) => f.event === 'sample' && f.data.metrics.temperature === next, 2000, 'the following batch');
  });
});
