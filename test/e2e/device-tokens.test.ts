// DEVICE_TOKENS on the embedded broker (docs/api.md Configuration): MQTT username = device
// id, password = token; a device may only publish and subscribe under its own
// devices/<id>/ topics; tokens never reach the logs.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../../src/broker/embedded-broker';
import { DatabaseService } from '../../src/storage/database.service';
import { waitFor } from '../support/free-port';
import { telemetryTopic } from '../support/publisher';
import { startTestApp, type TestApp } from '../support/test-app';

const WRONG_PASSWORD = 'wrong-Passw0rd-x';

/** Resolves when the client's connection closes. */
function closeOf(client: MqttClient): Promise<void> {
  return new Promise((resolve) => client.once('close', () => resolve()));
}

/** Resolves with `value` after ms; the timer does not keep the process alive. */
function after<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms).unref());
}

describe('device tokens on the embedded broker', () => {
  let dataDir: string;
  let app: TestApp;
  let mqttUrl: string;
  const clients: MqttClient[] = [];
  const base = Date.UTC(2026, 4, 10, 9, 0, 0);

  /** Connects and resolves with the client, or with the CONNACK refusal (return code) and a closed client. */
  async function attempt(options: IClientOptions): Promise<{ client: MqttClient; refused?: number; error?: Error }> {
    const client = mqtt.connect(mqttUrl, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5000,
      clientId: `t-${Math.random().toString(36).slice(2, 10)}`,
      ...options,
    });
    clients.push(client);
    let connackCode: number | undefined;
    client.on('packetreceive', (packet) => {
      if (packet.cmd === 'connack') connackCode = packet.returnCode;
    });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error('closed before CONNACK')));
      });
      return { client };
    } catch (error) {
      return { client, refused: connackCode, error: error as Error };
    }
  }

  async function connectAs(username: string, password: string): Promise<MqttClient> {
    const { client, error } = await attempt({ username, password });
    if (error) throw error;
    return client;
  }

  const samplesOf = async (deviceId: string) =>
    app
      .get(DatabaseService)
      .query<{ metric: string; value: number; ts: Date }>(`SELECT metric, value, ts FROM samples WHERE device_id = $1 ORDER BY ts, metric`, [deviceId]);

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-e2e-tokens-'));
    // MQTT_PORT=0: the OS picks the broker's port at listen time, so no other test can take it in between.
    app = await startTestApp({
      DATA_DIR: dataDir,
      MQTT_PORT: '0',
      DEVICE_TOKENS: 'dev-1:secret1,dev-2:secret2',
      LOG_LEVEL: 'trace', // every line the service can write is checked for tokens
    });
    mqttUrl = `mqtt://127.0.0.1:${app.get(EmbeddedBroker).port}`;
  }, 60_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await app?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('accepts a device with its own id and token and stores what it publishes', async () => {
    const dev1 = await connectAs('dev-1', 'secret1');
    await dev1.publishAsync(telemetryTopic('dev-1'), JSON.stringify({ ts: base, metrics: { temperature: 21.5 } }), { qos: 1 });
    await waitFor(async () => (await samplesOf('dev-1')).length === 1, 10_000, 'dev-1 sample');
    expect((await samplesOf('dev-1')).map((r) => [r.metric, r.value, r.ts.getTime()])).toEqual([['temperature', 21.5, base]]);
    expect(dev1.connected).toBe(true);
  });

  it.each([
    ['a wrong password', 'dev-1', WRONG_PASSWORD],
    ["another device's token", 'dev-1', 'secret2'],
    ['an unknown username', 'dev-9', 'secret1'],
    ['an empty password', 'dev-2', ''],
  ])('refuses %s at CONNECT with return code 4', async (_what, username, password) => {
    const { client, refused, error } = await attempt({ username, password });
    expect(error).toBeDefined();
    expect(refused).toBe(4); // BAD_USERNAME_OR_PASSWORD
    expect((error as Error & { code?: number }).code).toBe(4);
    expect(client.connected).toBe(false);
  });

  it('refuses a device that sends no credentials', async () => {
    const { refused, error } = await attempt({});
    expect(error).toBeDefined();
    expect(refused).toBe(4);
  });

  it.each([['dev-2'], ['dev-10']])("closes dev-1's connection when it publishes to devices/%s/telemetry and stores nothing of it", async (victim) => {
    const dev1 = await connectAs('dev-1', 'secret1');
    const closed = closeOf(dev1);
    const forged = dev1.publishAsync(telemetryTopic(victim), JSON.stringify({ ts: base + 1000, metrics: { forged: 666 } }), { qos: 1 });
    const outcome = await Promise.race([
      forged.then(
        () => 'acknowledged',
        () => 'failed',
      ),
      closed.then(() => 'connection closed'),
      after(5000, 'no reaction'),
    ]);
    expect(outcome).toBe('connection closed');

    if (victim === 'dev-2') {
      // The real dev-2's own messages are still stored.
      const dev2 = await connectAs('dev-2', 'secret2');
      await dev2.publishAsync(telemetryTopic('dev-2'), JSON.stringify({ ts: base + 2000, metrics: { own: 42 } }), { qos: 1 });
      await waitFor(async () => (await samplesOf('dev-2')).some((r) => r.metric === 'own'), 10_000, "dev-2's own sample");
    }
    await new Promise((resolve) => setTimeout(resolve, 300)); // time enough for a wrongly accepted message to be committed
    const rows = await samplesOf(victim);
    expect(rows.filter((r) => r.metric === 'forged')).toEqual([]);
    if (victim === 'dev-2') expect(rows.map((r) => [r.metric, r.value])).toEqual([['own', 42]]);
    const [devices] = await app.get(DatabaseService).query<{ n: number }>(`SELECT count(*)::int AS n FROM devices WHERE id = 'dev-10'`);
    expect(devices.n).toBe(0);
  });

  it("lets dev-1 subscribe to its own topics but not to dev-2's (or everyone's)", async () => {
    // Positive control: a subscription under devices/dev-1/ is granted and receives dev-1's messages.
    const watcher = await connectAs('dev-1', 'secret1');
    const granted = await watcher.subscribeAsync('devices/dev-1/#', { qos: 1 });
    expect(granted.map((g) => g.qos)).toEqual([1]);
    const seenByWatcher: string[] = [];
    watcher.on('message', (topic) => seenByWatcher.push(topic));

    for (const filter of ['devices/dev-2/#', 'devices/dev-2/telemetry', 'devices/+/telemetry', '#']) {
      const spy = await connectAs('dev-1', 'secret1');
      const received: string[] = [];
      spy.on('message', (topic) => received.push(topic));
      const closed = closeOf(spy).then(() => 'refused: connection closed');
      const outcome = await Promise.race([
        spy.subscribeAsync(filter, { qos: 1 }).then(
          (grants) => (grants.every((g) => g.qos === 128) ? 'refused: granted 0x80' : `granted qos ${grants.map((g) => g.qos).join(',')}`),
          () => 'refused: subscribe failed',
        ),
        closed,
        after(5000, 'no answer'),
      ]);
      expect({ filter, outcome }).toEqual({ filter, outcome: expect.stringMatching(/^refused/) });

      // Whatever the form of the refusal, dev-2's telemetry never reaches dev-1.
      const dev2 = await connectAs('dev-2', 'secret2');
      const ts = base + 10_000 + Math.floor(Math.random() * 1_000_000);
      await dev2.publishAsync(telemetryTopic('dev-2'), JSON.stringify({ ts, metrics: { probe: 1 } }), { qos: 1 });
      await dev2.endAsync();
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(received.filter((t) => t.startsWith('devices/dev-2/'))).toEqual([]);
      await spy.endAsync(true);
    }

    const dev1 = await connectAs('dev-1', 'secret1');
    await dev1.publishAsync(telemetryTopic('dev-1'), JSON.stringify({ ts: base + 5000, metrics: { temperature: 22 } }), { qos: 1 });
    await waitFor(() => seenByWatcher.includes(telemetryTopic('dev-1')), 5000, "the watcher to see dev-1's own message");
    expect(seenByWatcher.every((t) => t.startsWith('devices/dev-1/'))).toBe(true);
  });

  it('never writes a device token or a tried password to the logs', async () => {
    // The log is not empty (the broker announced itself with token auth), so the check below means something.
    expect(app.logs.length).toBeGreaterThan(0);
    expect(app.logs.some((line) => line.includes('embedded MQTT broker listening') && line.includes('device tokens'))).toBe(true);
    const leaks = app.logs.filter((line) => ['secret1', 'secret2', WRONG_PASSWORD].some((s) => line.includes(s)));
    expect(leaks).toEqual([]);
  });
});
