// Live feeds across instances (docs/api.md WebSocket "stored from then on, by any
// instance", the rate limit "shared by all instances"), and what happens when
// the Redis that connects them goes away.
//
// Two app instances on one throw-away PostgreSQL database, each with its own
// embedded MQTT broker (MQTT_URL unset, MQTT_PORT=0; the shared Mosquitto is
// never touched) and distinct INSTANCE_IDs:
//  - A and B on the shared Redis, database 13 (reserved for the realtime
//    tests, flushed before each test). Pub/sub channels are server-wide, not
//    per database, which is what connects A and B.
//  - C and D on a private redis-server that the test kills and restarts.
import Redis from 'ioredis';
import { metricValue } from '../support/app-process';
import { waitFor } from '../support/free-port';
import { PrivateRedis } from '../support/private-redis';
import { telemetryTopic } from '../support/publisher';
import { describeWithServers, sharedRedisUrl } from '../support/servers';
import { type EmbeddedInstance, startEmbeddedInstance, stopEmbeddedInstance } from '../support/embedded-instance';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { type Frame, lockSharedRedisDb, now, WsTestClient } from '../support/ws-client';

const REDIS_DB = 2;
const SHARED_REDIS_URL = sharedRedisUrl(REDIS_DB);
/** The channel of the instances' database (database 0 alone uses plain `telemetry:fanout`). */
const FANOUT_CHANNEL = `telemetry:fanout:db${REDIS_DB}`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const iso = (ms: number) => new Date(ms).toISOString();
const isSample = (deviceId: string, ts?: number) => (f: Frame) =>
  f.event === 'sample' && f.data?.deviceId === deviceId && (ts === undefined || f.data.ts === iso(ts));

type Instance = EmbeddedInstance;

const startInstance = (env: Record<string, string | undefined>, deviceClientId: string) =>
  startEmbeddedInstance({ WS_RATE_LIMIT: undefined, WS_RATE_WINDOW_S: undefined, ...env }, deviceClientId);
const stopInstance = stopEmbeddedInstance;

async function metric(instance: Instance, name: string): Promise<number> {
  const res = await instance.app.app.inject({ method: 'GET', url: '/metrics' });
  return metricValue(res.body, name);
}

describeWithServers(['postgres', 'redis'])('realtime across instances', () => {
  const run = Math.random().toString(36).slice(2, 8);
  let db: TestDatabase;
  const clients: WsTestClient[] = [];
  let clock = Date.now() - 3600_000;
  const nextTs = () => ++clock;

  async function connect(instance: Instance): Promise<WsTestClient> {
    const client = await WsTestClient.connect(instance.wsUrl);
    clients.push(client);
    return client;
  }

  /** Publishes to the instance's own broker; the PUBACK comes after commit (and after local delivery). */
  async function publish(instance: Instance, deviceId: string, metrics: Record<string, number>, ts = nextTs()): Promise<number> {
    await instance.device.publishAsync(telemetryTopic(deviceId), JSON.stringify({ ts, metrics }), { qos: 1 });
    return ts;
  }

  beforeAll(async () => {
    db = await createTestDatabase('realtime_scaleout');
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    await db?.drop();
  });

  describe('two instances on the shared Redis (db 13)', () => {
    let release: (() => Promise<void>) | undefined;
    let redis: Redis;
    let a: Instance;
    let b: Instance;

    beforeAll(async () => {
      release = await lockSharedRedisDb(REDIS_DB);
      redis = new Redis(SHARED_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
      await redis.connect();
      await redis.flushdb();
      const env = { DATABASE_URL: db.url, REDIS_URL: SHARED_REDIS_URL };
      a = await startInstance({ ...env, INSTANCE_ID: `so-a-${run}` }, `so-dev-a-${run}`);
      b = await startInstance({ ...env, INSTANCE_ID: `so-b-${run}` }, `so-dev-b-${run}`);
    }, 11 * 60_000);

    beforeEach(async () => {
      await redis.flushdb();
    });

    afterAll(async () => {
      await stopInstance(a);
      await stopInstance(b);
      if (redis) {
        await redis.flushdb().catch(() => undefined);
        await redis.quit().catch(() => undefined);
      }
      await release?.();
    });

    it('a sample ingested by A reaches a client on B (and vice versa), once each, published once on the fan-out channel of their database', async () => {
      // An outside listener on the channel counts how often each sample is published.
      const listener = new Redis(SHARED_REDIS_URL, { lazyConnect: true });
      await listener.connect();
      const published: string[] = [];
      listener.on('message', (_channel: string, message: string) => published.push(message));
      await listener.subscribe(FANOUT_CHANNEL);
      try {
        const fromA = `so-from-a-${run}`;
        const fromB = `so-from-b-${run}`;
        const onA = await connect(a);
        const onB = await connect(b);
        const starOnB = await connect(b);
        for (const [client, id] of [
          [onA, fromA],
          [onA, fromB],
          [onB, fromA],
          [onB, fromB],
        ] as const) {
          expect((await client.request('subscribe', { deviceId: id })).event).toBe('subscribed');
        }
        await starOnB.request('subscribe', { deviceId: '*' });

        const tA = await publish(a, fromA, { temperature: 1.5 });
        const tB = await publish(b, fromB, { temperature: 2.5 });
        const started = now();
        for (const client of [onA, onB, starOnB]) {
          expect((await client.next(isSample(fromA, tA), 5000, 'the sample ingested by A')).data).toEqual({
            deviceId: fromA,
            ts: iso(tA),
            metrics: { temperature: 1.5 },
          });
        }
        for (const client of [onA, onB, starOnB]) {
          expect((await client.next(isSample(fromB, tB), 5000, 'the sample ingested by B')).data).toEqual({
            deviceId: fromB,
            ts: iso(tB),
            metrics: { temperature: 2.5 },
          });
        }
        const crossMs = now() - started;

        await sleep(300);
        // Once each: the ingesting instance delivers locally and ignores its own echo.
        for (const client of [onA, onB, starOnB]) {
          expect(client.frames.filter(isSample(fromA, tA))).toHaveLength(1);
          expect(client.frames.filter(isSample(fromB, tB))).toHaveLength(1);
        }
        // Each committed batch is published once, by the instance that ingested it.
        // (The channel also carries the devices' status changes, as JSON objects; batches are arrays.)
        const batches = published.filter((m) => m.slice(m.indexOf('\n') + 1).startsWith('['));
        expect(batches.filter((m) => m.includes(fromA))).toHaveLength(1);
        expect(batches.filter((m) => m.includes(fromB))).toHaveLength(1);
        console.log(`[realtime-scaleout] cross-instance delivery of both samples seen after ${crossMs.toFixed(1)} ms`);
      } finally {
        await listener.quit().catch(() => listener.disconnect());
      }
    });

    it('the rate-limit bucket is shared: 60 messages on A and 40 on B pass, the next on either is RATE_LIMITED', async () => {
      const onA = await connect(a);
      const onB = await connect(b);
      for (let i = 0; i < 60; i++) onA.send('unsubscribe', { deviceId: `so-rl-a-${i}` });
      const answersA: Frame[] = [];
      for (let i = 0; i < 60; i++) answersA.push(await onA.next(() => true, 10000, `A answer #${i + 1}`));
      expect(answersA.every((f) => f.event === 'unsubscribed')).toBe(true);

      for (let i = 0; i < 40; i++) onB.send('unsubscribe', { deviceId: `so-rl-b-${i}` });
      const answersB: Frame[] = [];
      for (let i = 0; i < 40; i++) answersB.push(await onB.next(() => true, 10000, `B answer #${i + 1}`));
      expect(answersB.every((f) => f.event === 'unsubscribed')).toBe(true);

      const nextOnB = await onB.request('latest', { deviceId: `so-rl-${run}` });
      expect(nextOnB.event).toBe('error');
      expect(nextOnB.data.code).toBe('RATE_LIMITED');
      expect(nextOnB.data.retryAfterMs).toBeGreaterThanOrEqual(1);
      expect(nextOnB.data.retryAfterMs).toBeLessThanOrEqual(700);
      const nextOnA = await onA.request('latest', { deviceId: `so-rl-${run}` });
      expect(nextOnA.event).toBe('error');
      expect(nextOnA.data.code).toBe('RATE_LIMITED');

      // One bucket in Redis for the client IP, whichever instance took the tokens.
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, batch] = await redis.scan(cursor, 'MATCH', 'telemetry:ratelimit:*', 'COUNT', 1000);
        cursor = next;
        keys.push(...batch);
      } while (cursor !== '0');
      expect(keys).toHaveLength(1);
      expect(keys[0]).toMatch(/^telemetry:ratelimit:\{(::ffff:)?127\.0\.0\.1\}$/);
    });
  });

  describe('Redis goes down and comes back (private redis-server)', () => {
    let privateRedis: PrivateRedis;
    let c: Instance;
    let d: Instance;

    beforeAll(async () => {
      privateRedis = await PrivateRedis.start();
      const env = { DATABASE_URL: db.url, REDIS_URL: privateRedis.url };
      c = await startInstance({ ...env, INSTANCE_ID: `so-c-${run}` }, `so-dev-c-${run}`);
      d = await startInstance({ ...env, INSTANCE_ID: `so-d-${run}` }, `so-dev-d-${run}`);
    });

    afterAll(async () => {
      await stopInstance(c);
      await stopInstance(d);
      await privateRedis?.destroy();
    });

    /**
     * Nest's `Logger` instances write to ONE process-wide logger: the last app
     * created in this process (D). So C's lines may land in `d.app.logs` with
     * D's instance label; the two apps' logs are read together. Only C ingests
     * while Redis is down, so every such line is C's.
     */
    const fanoutWarnings = () => [...c.app.logs, ...d.app.logs].filter((line) => line.includes('Redis unavailable'));

    it('local delivery continues while Redis is down (counted, warned about once), and cross-instance delivery resumes by itself', async () => {
      const id = `so-outage-${run}`;
      const onC = await connect(c);
      const onD = await connect(d);
      await onC.request('subscribe', { deviceId: id });
      await onD.request('subscribe', { deviceId: id });

      // Before: C → D works.
      const before = await publish(c, id, { v: 0 });
      await onC.next(isSample(id, before));
      await onD.next(isSample(id, before), 5000, 'the pre-outage sample on D');
      const unpublishedBefore = await metric(c, 'telemetry_fanout_unpublished_total');
      const warningsBefore = fanoutWarnings().length;
      expect(warningsBefore).toBe(0);

      await privateRedis.kill('SIGKILL');
      await waitFor(async () => (await metric(c, 'telemetry_cache_backend_up')) === 0, 5000, 'C to notice Redis is down');

      // Many batches (each message awaits its PUBACK, i.e. its own commit).
      const BATCHES = 30;
      const during: number[] = [];
      for (let i = 1; i <= BATCHES; i++) during.push(await publish(c, id, { v: i }));
      for (const ts of during) await onC.next(isSample(id, ts), 5000, 'a sample on C while Redis is down');
      // Requests are still answered (memory rate limit and cache).
      expect((await onC.request('latest', { deviceId: id })).data).toEqual({ deviceId: id, ts: iso(during[during.length - 1]), metrics: { v: BATCHES } });

      const unpublished = (await metric(c, 'telemetry_fanout_unpublished_total')) - unpublishedBefore;
      expect(unpublished).toBeGreaterThan(0);
      const warnings = fanoutWarnings();
      expect(warnings).toHaveLength(1);

      // Back: within a few seconds a sample ingested by C reaches D again, without any help.
      await privateRedis.restart();
      const restarted = now();
      const probes: number[] = [];
      let reachedD: number | undefined;
      const deadline = restarted + 15000;
      while (reachedD === undefined && now() < deadline) {
        const ts = await publish(c, id, { probe: probes.length });
        probes.push(ts);
        await sleep(250);
        reachedD = probes.find((t) => onD.frames.some(isSample(id, t)));
      }
      const recoveryMs = now() - restarted;
      expect(reachedD).toBeDefined();
      // And D → C as well.
      const back = await publish(d, id, { v: -1 });
      await onC.next(isSample(id, back), 5000, 'a sample ingested by D on C after the outage');

      // The outage was one episode: still exactly one warning about it.
      expect(fanoutWarnings()).toHaveLength(1);
      console.log(
        `[realtime-scaleout] Redis outage: ${BATCHES} batches delivered locally on C, telemetry_fanout_unpublished_total +${unpublished}, ` +
          `${warnings.length} warning; cross-instance delivery back ${(recoveryMs / 1000).toFixed(1)} s after restart (${probes.length} probes)`,
      );
    }, 90_000);
  });
});
