// Device status (docs/api.md Device status) the way `npm start` runs: embedded PostgreSQL
// (PGlite), the embedded MQTT broker with DEVICE_TOKENS, no Redis. Needs no
// shared server.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../../src/broker/embedded-broker';
import { DEFAULT_OPTIONS } from '../../src/simulator/simulate-options';
import { runSimulation, silencePlan } from '../../src/simulator/simulation';
import { connectDevice, telemetryTopic } from '../support/publisher';
import { startTestApp, type TestApp } from '../support/test-app';
import { type Frame, WsTestClient } from '../support/ws-client';

const TIMEOUT_S = 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const isStatus = (deviceId: string, status?: string) => (f: Frame) =>
  f.event === 'status' && f.data?.deviceId === deviceId && (status === undefined || f.data.status === status);

describe('device status on the embedded broker and embedded PostgreSQL', () => {
  let dir: string;
  let app: TestApp | undefined;
  const devices: MqttClient[] = [];
  const clients: WsTestClient[] = [];

  const start = async () => {
    app = await startTestApp({
      DATABASE_URL: undefined,
      DATA_DIR: dir,
      REDIS_URL: undefined,
      MQTT_URL: undefined,
      MQTT_PORT: '0',
      WS_TOKEN: undefined,
      DEVICE_OFFLINE_AFTER_S: String(TIMEOUT_S),
      DEVICE_TOKENS: 'emb-1:secret1,emb-2:secret2,emb-3:secret3',
    });
  };
  const current = () => app as TestApp;
  const brokerUrl = () => `mqtt://127.0.0.1:${current().get(EmbeddedBroker).port}`;

  async function device(id: string, token: string, willFor = id): Promise<MqttClient> {
    const client = await connectDevice(brokerUrl(), {
      clientId: `${id}-${Math.random().toString(36).slice(2, 6)}`,
      username: id,
      password: token,
      will: { topic: `devices/${willFor}/status`, payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    devices.push(client);
    return client;
  }

  async function watch(deviceId = '*'): Promise<WsTestClient> {
    const client = await WsTestClient.connect(`${current().baseUrl.replace('http', 'ws')}/ws`);
    clients.push(client);
    client.send('subscribe', { deviceId });
    await client.next((f) => f.event === 'subscribed');
    return client;
  }

  const statusOf = async (id: string) => (await current().app.inject({ method: 'GET', url: `/api/devices/${id}/status` })).json();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'th-status-embedded-'));
    await start();
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    for (const d of devices.splice(0)) d.end(true);
  });

  afterAll(async () => {
    await app?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('online with a message, offline by timeout, each announced once', async () => {
    const ws = await watch('emb-1');
    const dev = await device('emb-1', 'secret1');
    await dev.publishAsync(telemetryTopic('emb-1'), JSON.stringify({ metrics: { t: 1 } }), { qos: 1 });
    expect((await ws.next(isStatus('emb-1', 'online'), 10_000)).data.reason).toBe('message');
    const offline = await ws.next(isStatus('emb-1', 'offline'), 15_000, 'offline by timeout');
    const state = await statusOf('emb-1');
    expect(offline.data).toEqual({ deviceId: 'emb-1', status: 'offline', since: state.since, reason: 'timeout' });
    expect(Date.parse(state.since)).toBe(Date.parse(state.lastSeen) + TIMEOUT_S * 1000);
    await sleep(2000);
    expect(ws.frames.filter(isStatus('emb-1')).length).toBe(2);
  });

  it('a device killed without DISCONNECT goes offline through its Last Will; a will for another device is refused', async () => {
    const ws = await watch();
    const dev = await device('emb-2', 'secret2');
    // emb-1's will names emb-2's status topic: DEVICE_TOKENS forbids it.
    const impostor = await device('emb-1', 'secret1', 'emb-2');
    await dev.publishAsync(telemetryTopic('emb-2'), JSON.stringify({ metrics: { t: 1 } }), { qos: 1 });
    await impostor.publishAsync(telemetryTopic('emb-1'), JSON.stringify({ metrics: { t: 1 } }), { qos: 1 });
    await ws.next(isStatus('emb-2', 'online'), 10_000);
    await ws.next(isStatus('emb-1', 'online'), 10_000);
    impostor.stream.destroy();
    await sleep(500);
    expect((await statusOf('emb-2')).status).toBe('online');
    dev.stream.destroy();
    const offline = await ws.next(isStatus('emb-2', 'offline'), 10_000, 'offline by will');
    expect(offline.data.reason).toBe('will');
    expect(await statusOf('emb-2')).toMatchObject({ status: 'offline', reason: 'will', since: offline.data.since });
    // The device publishes "online" on its status topic itself.
    const again = await device('emb-2', 'secret2');
    await again.publishAsync('devices/emb-2/status', '{"status":"online"}', { qos: 1 });
    expect((await ws.next(isStatus('emb-2', 'online'), 10_000)).data.reason).toBe('will');
  });

  it('after a restart during an offline period: offline since last seen + timeout, nothing announced twice', async () => {
    const ws = await watch('emb-3');
    const dev = await device('emb-3', 'secret3');
    await dev.publishAsync(telemetryTopic('emb-3'), JSON.stringify({ metrics: { t: 2 } }), { qos: 1 });
    await ws.next(isStatus('emb-3', 'online'), 10_000);
    await dev.endAsync(); // a clean DISCONNECT: no Last Will
    await ws.close();
    await current().close();
    app = undefined;
    await sleep(TIMEOUT_S * 1000 + 1000);
    await start();
    const state = await statusOf('emb-3');
    expect(state).toMatchObject({ status: 'offline', reason: 'timeout' });
    expect(Date.parse(state.since)).toBe(Date.parse(state.lastSeen) + TIMEOUT_S * 1000);
    const after = await watch('emb-3');
    await sleep(2500);
    expect(after.frames.filter(isStatus('emb-3')).length).toBe(0);
    const history = (await current().app.inject({ method: 'GET', url: '/api/devices/emb-3/status/history' })).json().items;
    expect(history.map((i: { status: string; reason: string }) => `${i.status}/${i.reason}`)).toEqual(['offline/timeout', 'online/message']);
  });

  it('the simulator with --will --silent: silenced devices are cut without DISCONNECT and go offline by their will, then come back', async () => {
    // The simulator's devices have no tokens: a second app without DEVICE_TOKENS.
    const open = await startTestApp({
      DATABASE_URL: undefined,
      DATA_DIR: join(dir, 'sim'),
      REDIS_URL: undefined,
      MQTT_URL: undefined,
      MQTT_PORT: '0',
      WS_TOKEN: undefined,
      DEVICE_OFFLINE_AFTER_S: '30',
    });
    try {
      const ws = await WsTestClient.connect(`${open.baseUrl.replace('http', 'ws')}/ws`);
      clients.push(ws);
      ws.send('subscribe', { deviceId: '*' });
      await ws.next((f) => f.event === 'subscribed');
      const options = {
        ...DEFAULT_OPTIONS,
        url: `mqtt://127.0.0.1:${open.get(EmbeddedBroker).port}`,
        devices: 4,
        rate: 40,
        duration: 4,
        prefix: 'simw-',
        silent: 0.5,
        silentAfter: 1,
        silentFor: 1.5,
        will: true,
      };
      const summary = await runSimulation(options);
      expect(summary.killed).toBe(2);
      expect(summary.errors).toBe(0);
      const silent = [...silencePlan(options).silent].map((i) => `simw-00${i + 1}`);
      for (const id of silent) {
        const offline = ws.frames.find(isStatus(id, 'offline'));
        expect(offline?.data.reason).toBe('will');
        // Back: online again from its next message after the silence.
        expect(ws.frames.filter(isStatus(id, 'online')).map((f) => f.data.reason)).toEqual(['message', 'message']);
      }
      const others = ['simw-001', 'simw-002', 'simw-003', 'simw-004'].filter((id) => !silent.includes(id));
      for (const id of others) expect(ws.frames.filter(isStatus(id)).map((f) => f.data.status)).toEqual(['online']);
    } finally {
      await open.close();
    }
  });
});
