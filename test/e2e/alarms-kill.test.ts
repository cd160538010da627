// The webhook outbox across a crash: the built service (child process) is
// SIGKILLed while a raise's webhook is in flight (the receiver has the
// request and has not answered), then started again on the same database.
// The event was committed with the alarm, so the new process sends it, with
// the same event id, body and signature, once the dead sender's lease runs out.
import { createHmac } from 'node:crypto';
import { type AppProcess, buildService, startAppProcess } from '../support/app-process';
import { freePort, waitFor } from '../support/free-port';
import { connectDevice, telemetryTopic } from '../support/publisher';
import { describeWithServers } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { WebhookReceiver } from '../support/webhook-receiver';

const ADMIN = 'kill-admin';
const SECRET = 'kill-secret';

describeWithServers(['postgres'])('alarm webhooks survive a SIGKILL between commit and send', () => {
  let db: TestDatabase;
  let receiver: WebhookReceiver;
  const apps: AppProcess[] = [];

  async function start(): Promise<{ app: AppProcess; mqttPort: number }> {
    const mqttPort = await freePort();
    const app = await startAppProcess({
      DATABASE_URL: db.url,
      MQTT_URL: undefined,
      MQTT_PORT: String(mqttPort),
      REDIS_URL: undefined,
      ADMIN_API_KEY: ADMIN,
      ALARM_WEBHOOK_SECRET: SECRET,
      INSTANCE_ID: 'alarms-kill',
    });
    apps.push(app);
    return { app, mqttPort };
  }

  beforeAll(async () => {
    await buildService();
    db = await createTestDatabase('alarms_kill');
    receiver = await WebhookReceiver.create();
  }, 180_000);

  afterAll(async () => {
    for (const app of apps) await app.stop();
    await receiver?.stop();
    await db?.drop();
  });

  it('sends the event after the restart with the same event id', async () => {
    const first = await start();
    const res = await first.app.fetch('/api/alarm-rules', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': ADMIN },
      body: JSON.stringify({
        name: 'hot',
        metric: 'temp',
        devices: ['boiler'],
        condition: { op: '>', value: 90 },
        severity: 'critical',
        webhookUrl: receiver.url,
      }),
    });
    expect(res.status).toBe(201);

    receiver.respond = (_hook, nth) => (nth === 1 ? 'hang' : 200);
    const device = await connectDevice(`mqtt://127.0.0.1:${first.mqttPort}`, { clientId: 'kill-boiler' });
    await device.publishAsync(telemetryTopic('boiler'), JSON.stringify({ ts: Date.now() - 1000, metrics: { temp: 95 } }), { qos: 1 });
    await device.endAsync();
    await waitFor(() => receiver.received.length === 1, 15_000, 'the first attempt');
    expect(await first.app.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

    const killedAt = Date.now();
    await start();
    // The dead sender's lease (15 s) has to run out first.
    await waitFor(() => receiver.received.length === 2, 40_000, 'the event after the restart');
    const [before, after] = receiver.received;
    expect(after.headers['x-telemetry-event-id']).toBe(before.headers['x-telemetry-event-id']);
    expect(after.body).toBe(before.body);
    expect(after.json).toMatchObject({
      type: 'alarm.raised',
      alarm: { deviceId: 'boiler', metric: 'temp', value: 95, status: 'active', severity: 'critical' },
    });
    expect(after.headers['x-telemetry-signature']).toBe(`sha256=${createHmac('sha256', SECRET).update(after.body).digest('hex')}`);
    expect(after.receivedAt - killedAt).toBeLessThan(40_000);
    await waitFor(
      async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM alarm_outbox WHERE sent_at IS NOT NULL`))[0].n === 1,
      5000,
      'sent recorded',
    );
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(receiver.received).toHaveLength(2);
    const alarms = await db.query(`SELECT status FROM alarms`);
    expect(alarms).toEqual([{ status: 'active' }]);
  }, 120_000);

  it('an event committed while the receiver was down is sent by the restarted process', async () => {
    const down = await WebhookReceiver.create(false);
    try {
      const first = await start();
      const res = await first.app.fetch('/api/alarm-rules', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': ADMIN },
        body: JSON.stringify({
          name: 'cold',
          metric: 'temp',
          devices: ['freezer'],
          condition: { op: '<', value: -30 },
          severity: 'major',
          webhookUrl: down.url,
        }),
      });
      expect(res.status).toBe(201);
      const device = await connectDevice(`mqtt://127.0.0.1:${first.mqttPort}`, { clientId: 'kill-freezer' });
      await device.publishAsync(telemetryTopic('freezer'), JSON.stringify({ ts: Date.now() - 1000, metrics: { temp: -40 } }), { qos: 1 });
      await device.endAsync();
      await waitFor(async () => (await db.query(`SELECT 1 FROM alarm_outbox WHERE url = $1`, [down.url])).length === 1, 15_000, 'the event committed');
      await first.app.kill('SIGKILL');
      await down.start();
      await start();
      await waitFor(() => down.received.length === 1, 40_000, 'the event after the restart');
      const [row] = await db.query<{ id: string }>(`SELECT id FROM alarm_outbox WHERE url = $1`, [down.url]);
      expect(down.received[0].headers['x-telemetry-event-id']).toBe(row.id);
      expect(down.received[0].json).toMatchObject({ type: 'alarm.raised', alarm: { deviceId: 'freezer', value: -40 } });
    } finally {
      await down.stop();
    }
  }, 120_000);
});
