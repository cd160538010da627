// Device status (docs/api.md Device status) on the real servers: two app instances on one
// PostgreSQL database, a private Mosquitto (the shared subscription must not
// be split with other runs' services on the shared broker) and a private
// Redis that the last test stops. DEVICE_OFFLINE_AFTER_S=2.
import type { MqttClient } from 'mqtt';
import { metricValue } from '../support/app-process';
import { waitFor } from '../support/free-port';
import { PrivateMosquitto } from '../support/private-mosquitto';
import { PrivateRedis } from '../support/private-redis';
import { connectDevice, telemetryTopic } from '../support/publisher';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { startTestApp, type TestApp } from '../support/test-app';
import { type Frame, WsTestClient } from '../support/ws-client';
import { DeviceStatusService } from '../../src/status/device-status.service';
import { DeviceStatusStore } from '../../src/status/device-status.store';
import { StatusSweeper } from '../../src/status/status-sweeper';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('timing');

const TIMEOUT_S = 2;
const ADMIN_KEY = 'status-admin-key';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const isStatus = (deviceId: string, status?: string) => (f: Frame) =>
  f.event === 'status' && f.data?.deviceId === deviceId && (status === undefined || f.data.status === status);

describeWithServers(['postgres', 'redis', 'mosquitto'])('device status with real PostgreSQL, Redis and Mosquitto (docs/api.md Device status)', () => {
  const run = Math.random().toString(36).slice(2, 8);
  let db: TestDatabase;
  let broker: PrivateMosquitto;
  let redis: PrivateRedis;
  let a: TestApp | undefined;
  let b: TestApp | undefined;
  let device: MqttClient;
  const clients: WsTestClient[] = [];

  const env = () => ({
    DATABASE_URL: db.url,
    MQTT_URL: broker.url,
    REDIS_URL: redis.url,
    DEVICE_OFFLINE_AFTER_S: String(TIMEOUT_S),
    ADMIN_API_KEY: ADMIN_KEY,
    WS_TOKEN: undefined,
  });
  const startBoth = async () => {
    [a, b] = await Promise.all([startTestApp({ ...env(), INSTANCE_ID: `status-a-${run}` }), startTestApp({ ...env(), INSTANCE_ID: `status-b-${run}` })]);
  };
  const stopBoth = async () => {
    await Promise.all([a?.close(), b?.close()]);
    a = b = undefined;
  };
  const appA = () => a as TestApp;
  const appB = () => b as TestApp;

  async function watch(app: TestApp, deviceId = '*'): Promise<WsTestClient> {
    const client = await WsTestClient.connect(`${app.baseUrl.replace('http', 'ws')}/ws`);
    clients.push(client);
    client.send('subscribe', { deviceId });
    await client.next((f) => f.event === 'subscribed');
    return client;
  }

  async function publish(deviceId: string, client = device): Promise<void> {
    await client.publishAsync(telemetryTopic(deviceId), JSON.stringify({ metrics: { t: 1 } }), { qos: 1 });
  }

  async function getJson(app: TestApp, url: string, headers: Record<string, string> = {}) {
    const res = await app.app.inject({ method: 'GET', url, headers });
    return { status: res.statusCode, body: res.json() };
  }

  async function statusOf(deviceId: string) {
    return (await getJson(appA(), `/api/devices/${deviceId}/status`)).body;
  }

  async function history(deviceId: string): Promise<Array<{ status: string; since: string; reason: string }>> {
    return (await getJson(appA(), `/api/devices/${deviceId}/status/history`)).body.items;
  }

  const count = (client: WsTestClient, deviceId: string, status?: string) => client.frames.filter(isStatus(deviceId, status)).length;

  async function changesTotal(status: string): Promise<number> {
    let total = 0;
    for (const app of [appA(), appB()]) {
      const res = await app.app.inject({ method: 'GET', url: '/metrics' });
      total += metricValue(res.body, 'telemetry_device_status_changes_total', { status });
    }
    return total;
  }

  beforeAll(async () => {
    [db, broker, redis] = await Promise.all([createTestDatabase('device_status'), PrivateMosquitto.start(), PrivateRedis.start()]);
    await startBoth();
    device = await connectDevice(broker.url, { clientId: `status-dev-${run}` });
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    await device?.endAsync().catch(() => undefined);
    await stopBoth();
    await broker?.destroy();
    await redis?.destroy();
    await db?.drop();
  });

  it('goes online with a message and offline after DEVICE_OFFLINE_AFTER_S, each change announced once on every instance', async () => {
    const id = `st-${run}-timeout`;
    const [onA, onB] = await Promise.all([watch(appA()), watch(appB(), id)]);
    const onlineBefore = await changesTotal('online');
    const offlineBefore = await changesTotal('offline');
    await publish(id);
    const online = await onA.next(isStatus(id, 'online'), 10_000, 'online on A');
    await onB.next(isStatus(id, 'online'), 10_000, 'online on B');
    expect(online.data).toEqual({ deviceId: id, status: 'online', since: expect.any(String), reason: 'message' });

    const offline = await onA.next(isStatus(id, 'offline'), 15_000, 'offline on A');
    await onB.next(isStatus(id, 'offline'), 15_000, 'offline on B');
    const state = await statusOf(id);
    expect(state).toEqual({ deviceId: id, status: 'offline', since: expect.any(String), lastSeen: expect.any(String), reason: 'timeout' });
    expect(Date.parse(state.since)).toBe(Date.parse(state.lastSeen) + TIMEOUT_S * 1000);
    expect(offline.data).toEqual({ deviceId: id, status: 'offline', since: state.since, reason: 'timeout' });
    // Noticed within the timeout + 2 s (plus half a second for a loaded test machine).
    expect(offline.receivedAt - Date.parse(state.since)).toBeLessThan(2500);
    // …and never before it: no message for the whole timeout.
    expect(offline.receivedAt).toBeGreaterThan(Date.parse(state.since));

    await sleep(2500); // several more sweeps on both instances
    for (const client of [onA, onB]) {
      expect(count(client, id, 'online')).toBe(1);
      expect(count(client, id, 'offline')).toBe(1);
    }
    expect(await changesTotal('online')).toBe(onlineBefore + 1);
    expect(await changesTotal('offline')).toBe(offlineBefore + 1);
    expect(await history(id)).toEqual([
      { status: 'offline', since: state.since, reason: 'timeout' },
      { status: 'online', since: online.data.since, reason: 'message' },
    ]);
  });

  it('a steady device stays online, and its batches cost no status statement', async () => {
    const id = `st-${run}-steady`;
    const onA = await watch(appA(), id);
    const checksOf = (app: TestApp) => app.get(DeviceStatusService).onlineChecks;
    const checks = () => checksOf(appA()) + checksOf(appB());
    // Warm-up: each instance asks once, when the shared subscription first hands it the device.
    const initial = [checksOf(appA()), checksOf(appB())];
    await publish(id);
    await onA.next(isStatus(id, 'online'), 10_000);
    await waitFor(
      async () => {
        await publish(id);
        return checksOf(appA()) > initial[0] && checksOf(appB()) > initial[1];
      },
      10_000,
      'both instances saw the device',
    );
    await sleep(100);
    const before = checks();
    // Each instance gets every other message: a belief lasts lastSeen + 2 s - 0.5 s, so 200 ms apart keeps it.
    for (let i = 0; i < 15; i++) {
      await publish(id);
      await sleep(200);
    }
    expect(checks()).toBe(before);
    expect((await statusOf(id)).status).toBe('online');
    expect(count(onA, id)).toBe(1);
  });

  it('a client killed without DISCONNECT goes offline through its Last Will on Mosquitto, and back online with its next message', async () => {
    const id = `st-${run}-will`;
    const [onA, onB] = await Promise.all([watch(appA(), id), watch(appB())]);
    const mortal = await connectDevice(broker.url, {
      clientId: `will-${run}`,
      will: { topic: `devices/${id}/status`, payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    await publish(id, mortal);
    await onA.next(isStatus(id, 'online'), 10_000);
    mortal.stream.destroy(); // no DISCONNECT: the broker publishes the will
    const offline = await onA.next(isStatus(id, 'offline'), 10_000, 'offline by will');
    await onB.next(isStatus(id, 'offline'), 10_000);
    expect(offline.data.reason).toBe('will');
    expect(await statusOf(id)).toMatchObject({ status: 'offline', reason: 'will', since: offline.data.since });
    mortal.end(true);

    await publish(id);
    const back = await onA.next(isStatus(id, 'online'), 10_000, 'online again');
    expect(back.data.reason).toBe('message');
    // JSON form, published by the device itself.
    await device.publishAsync(`devices/${id}/status`, JSON.stringify({ status: 'offline' }), { qos: 1 });
    expect((await onA.next(isStatus(id, 'offline'), 10_000)).data.reason).toBe('will');
    await device.publishAsync(`devices/${id}/status`, 'online', { qos: 1 });
    expect((await onA.next(isStatus(id, 'online'), 10_000)).data.reason).toBe('will');
    // Garbage on the status topic changes nothing.
    await device.publishAsync(`devices/${id}/status`, 'maybe', { qos: 1 });
    await sleep(500);
    expect((await statusOf(id)).status).toBe('online');
    // online, offline (will), online (message), offline and online (status topic)
    expect(count(onA, id)).toBe(5);
    expect(count(onB, id)).toBe(5);
  });

  it('PUT /api/devices/:id/settings sets a per-device timeout (admin)', async () => {
    const id = `st-${run}-override`;
    await publish(id);
    await waitFor(async () => (await getJson(appA(), `/api/devices/${id}/status`)).status === 200, 10_000, 'device known');

    const put = (body: unknown, headers: Record<string, string> = { 'x-api-key': ADMIN_KEY }, target = id) =>
      appA().app.inject({ method: 'PUT', url: `/api/devices/${target}/settings`, payload: body as object, headers });
    expect((await put({ offlineAfterS: 6 }, {})).statusCode).toBe(403);
    expect((await put({ offlineAfterS: 6 }, { 'x-api-key': 'wrong' })).statusCode).toBe(403);
    for (const bad of [{ offlineAfterS: 0 }, { offlineAfterS: 1.5 }, { offlineAfterS: '6' }, {}, { offlineAfterS: 10_000_000 }]) {
      const res = await put(bad);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ statusCode: 400, message: expect.stringContaining('offlineAfterS') });
    }
    expect((await put({ offlineAfterS: 6 }, undefined, `st-${run}-nobody`)).statusCode).toBe(404);
    const ok = await put({ offlineAfterS: 6 });
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ deviceId: id, offlineAfterS: 6 });

    const onA = await watch(appA(), id);
    await publish(id);
    await sleep(4000); // past the default 2 s
    expect((await statusOf(id)).status).toBe('online');
    const offline = await onA.next(isStatus(id, 'offline'), 10_000, 'offline after 6 s');
    const state = await statusOf(id);
    expect(Date.parse(offline.data.since)).toBe(Date.parse(state.lastSeen) + 6000);
    expect(await getJson(appB(), `/api/devices/${id}/settings`)).toEqual({ status: 200, body: { deviceId: id, offlineAfterS: 6 } });

    // null restores the default.
    expect((await put({ offlineAfterS: null })).json()).toEqual({ deviceId: id, offlineAfterS: TIMEOUT_S });
    expect((await getJson(appA(), `/api/devices/${id}/settings`)).body).toEqual({ deviceId: id, offlineAfterS: TIMEOUT_S });
    expect((await getJson(appA(), `/api/devices/st-${run}-nobody/settings`)).status).toBe(404);
  });

  it('lists and filters by status, answers history by range, 400 and 404 where due', async () => {
    const on = `st-${run}-list-on`;
    const off = `st-${run}-list-off`;
    await publish(off);
    await waitFor(async () => (await getJson(appA(), `/api/devices/${off}/status`)).body.status === 'offline', 15_000, 'offline');
    await publish(on);
    await waitFor(async () => (await getJson(appA(), `/api/devices/${on}/status`)).body.status === 'online', 10_000, 'online');

    const all = (await getJson(appA(), '/api/devices?limit=1000')).body;
    expect(all.items.find((d: { id: string }) => d.id === on)).toMatchObject({ status: 'online' });
    expect(all.items.find((d: { id: string }) => d.id === off)).toMatchObject({ status: 'offline' });
    const online = (await getJson(appA(), '/api/devices?status=online&limit=1000')).body;
    const offline = (await getJson(appA(), '/api/devices?status=offline&limit=1000')).body;
    expect(online.items.every((d: { status: string }) => d.status === 'online')).toBe(true);
    expect(offline.items.every((d: { status: string }) => d.status === 'offline')).toBe(true);
    expect(online.items.map((d: { id: string }) => d.id)).toContain(on);
    expect(offline.items.map((d: { id: string }) => d.id)).toContain(off);
    expect(online.total).toBe(online.items.length);
    expect(online.total + offline.total).toBe(all.total);
    expect((await getJson(appA(), '/api/devices?status=sleepy')).status).toBe(400);

    const items = await history(off);
    expect(items.map((i) => i.status)).toEqual(['offline', 'online']);
    const between = new Date((Date.parse(items[0].since) + Date.parse(items[1].since)) / 2).toISOString();
    expect((await getJson(appA(), `/api/devices/${off}/status/history?to=${between}`)).body.items).toEqual([items[1]]);
    expect((await getJson(appA(), `/api/devices/${off}/status/history?from=${between}`)).body.items).toEqual([items[0]]);
    expect((await getJson(appA(), `/api/devices/${off}/status/history?from=${between}&to=${between}`)).status).toBe(400);
    expect((await getJson(appA(), `/api/devices/${off}/status/history?from=yesterday`)).status).toBe(400);
    for (const url of [`/api/devices/st-${run}-nobody/status`, `/api/devices/st-${run}-nobody/status/history`]) {
      expect(await getJson(appA(), url)).toEqual({ status: 404, body: { statusCode: 404, message: expect.any(String) } });
    }
    expect((await getJson(appA(), '/api/devices/bad%20id/status')).status).toBe(400);

    // RETENTION_DAYS pruning: only changes older than the cutoff go.
    await db.query(`INSERT INTO device_status_history (device_id, since, status, reason) VALUES ($1, now() - interval '40 days', 'online', 'message')`, [off]);
    expect(
      await appA()
        .get(DeviceStatusStore)
        .prune(new Date(Date.now() - 30 * 86_400_000)),
    ).toBeGreaterThanOrEqual(1);
    expect(await history(off)).toEqual(items);

    // A deleted device that reports again is a new device, online.
    const del = await appA().app.inject({ method: 'DELETE', url: `/api/devices/${on}`, headers: { 'x-api-key': ADMIN_KEY } });
    expect(del.statusCode).toBe(204);
    expect((await getJson(appA(), `/api/devices/${on}/status/history`)).status).toBe(404);
    await publish(on);
    await waitFor(async () => (await getJson(appA(), `/api/devices/${on}/status`)).status === 200, 10_000, 'device back');
    expect((await statusOf(on)).status).toBe('online');

    const metrics = (await appB().app.inject({ method: 'GET', url: '/metrics' })).body;
    const [{ n }] = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM devices WHERE status = 'online'`);
    expect(metricValue(metrics, 'telemetry_devices_online')).toBe(n);
  });

  it('a restart during an offline period: offline with since = last seen + timeout, announced once', async () => {
    const id = `st-${run}-restart`;
    const onA = await watch(appA(), id);
    await publish(id);
    await onA.next(isStatus(id, 'online'), 10_000);
    await onA.close();
    await stopBoth();
    await sleep(TIMEOUT_S * 1000 + 1500);
    await startBoth();
    // The first sweep ran before the instances took messages.
    const state = await statusOf(id);
    expect(state).toMatchObject({ status: 'offline', reason: 'timeout' });
    expect(Date.parse(state.since)).toBe(Date.parse(state.lastSeen) + TIMEOUT_S * 1000);
    const [afterA, afterB] = await Promise.all([watch(appA(), id), watch(appB(), id)]);
    await stopBoth();
    await startBoth();
    const [againA, againB] = await Promise.all([watch(appA(), id), watch(appB(), id)]);
    await sleep(2500);
    for (const client of [afterA, afterB, againA, againB]) expect(count(client, id)).toBe(0);
    expect((await history(id)).map((i) => `${i.status}/${i.reason}`)).toEqual(['offline/timeout', 'online/message']);
  });

  it('with Redis down during a sweep, the sweep still turns devices offline once; announcements reach other instances again once it is back', async () => {
    const id = `st-${run}-redis`;
    const owner = [appA(), appB()].find((app) => app.get(StatusSweeper).owner) as TestApp;
    expect(owner).toBeDefined();
    const other = owner === appA() ? appB() : appA();
    const [onOwner, onOther] = await Promise.all([watch(owner, id), watch(other, id)]);
    await publish(id);
    await onOwner.next(isStatus(id, 'online'), 10_000);
    await redis.kill('SIGKILL');
    try {
      const offline = await onOwner.next(isStatus(id, 'offline'), 15_000, 'offline while Redis is down');
      expect(offline.data.reason).toBe('timeout');
      // Back online while Redis is still down: every batch asks PostgreSQL (no belief without the
      // channel); the change is announced by the instance that ingested the message, to its own clients.
      const offlineOnOther = count(onOther, id, 'offline');
      await publish(id);
      await waitFor(() => count(onOwner, id, 'online') + count(onOther, id, 'online') === 2, 10_000, 'online while Redis is down');
      await onOwner.next(isStatus(id, 'offline'), 15_000, 'offline again');
      expect(count(onOther, id, 'offline')).toBe(offlineOnOther);
    } finally {
      await redis.restart();
    }
    // Wait until live samples cross between the instances both ways again (ioredis reconnects
    // within 2 s; an instance that published alone meanwhile waits for the others' hello, ≤ 5 s).
    const probe = `st-${run}-probe`;
    const [probeOwner, probeOther] = await Promise.all([watch(owner, probe), watch(other, probe)]);
    let ts = Date.now();
    const both = (t: number) =>
      [probeOwner, probeOther].every((c) => c.frames.some((f) => f.event === 'sample' && f.data.deviceId === probe && f.data.ts === new Date(t).toISOString()));
    await waitFor(
      async () => {
        const sent = [++ts, ++ts];
        for (const t of sent) await device.publishAsync(telemetryTopic(probe), JSON.stringify({ ts: t, metrics: { p: 1 } }), { qos: 1 });
        await sleep(200);
        return sent.every(both);
      },
      30_000,
      'samples crossing between the instances again',
    );
    const id2 = `st-${run}-redis-back`;
    const [onOwner2, onOther2] = await Promise.all([watch(owner, id2), watch(other, id2)]);
    await publish(id2);
    await onOwner2.next(isStatus(id2, 'online'), 10_000, 'online on the owner');
    await onOther2.next(isStatus(id2, 'online'), 10_000, 'online on the other instance');
    // The owner's sweep: announced on the other instance through Redis again.
    await onOther2.next(isStatus(id2, 'offline'), 15_000, 'offline announced on the other instance');
    expect(count(onOther2, id2, 'offline')).toBe(1);
    expect((await history(id)).map((i) => i.status)).toEqual(['offline', 'online', 'offline', 'online']);
  });

  it('when the sweeping instance stops, the other takes the sweep over', async () => {
    const owner = [appA(), appB()].find((app) => app.get(StatusSweeper).owner) as TestApp;
    const survivor = owner === appA() ? appB() : appA();
    expect(survivor.get(StatusSweeper).owner).toBe(false);
    const id = `st-${run}-takeover`;
    const watcher = await watch(survivor, id);
    await publish(id);
    await watcher.next(isStatus(id, 'online'), 10_000);
    await owner.close();
    if (owner === a) a = undefined;
    else b = undefined;
    const offline = await watcher.next(isStatus(id, 'offline'), 15_000, 'offline swept by the survivor');
    expect(survivor.get(StatusSweeper).owner).toBe(true);
    expect(offline.receivedAt - Date.parse(offline.data.since)).toBeLessThan(3500);
  });
});
