// No configured secret ever reaches a log line: passwords in the three URLs,
// the admin key, the WebSocket token and device tokens, across start-up,
// dependency errors, bad requests and shutdown.
import mqtt from 'mqtt';
import { describeWithServers, sharedRedisUrl } from '../support/servers';
import { createTestDatabase, type TestDatabase } from '../support/test-database';
import { PrivateMosquitto } from '../support/private-mosquitto';
import { startTestApp } from '../support/test-app';

const SECRETS = {
  pg: 'pg-Secret-4711',
  redis: 'redis-Secret-0815',
  mqtt: 'mqtt-Secret-2342',
  admin: 'admin-Secret-1234',
  ws: 'ws-Secret-9876',
};

/** The URL with `password` in it (user `default` when it names none, as Redis expects). */
function withPassword(value: string, password: string): string {
  const url = new URL(value);
  if (!url.username) url.username = 'default';
  url.password = password;
  return url.toString();
}

describeWithServers(['postgres', 'redis'])('secrets in logs', () => {
  let db: TestDatabase;
  let broker: PrivateMosquitto;

  beforeAll(async () => {
    db = await createTestDatabase('secrets');
    broker = await PrivateMosquitto.start();
  });
  afterAll(async () => {
    await broker?.destroy();
    await db?.drop();
  });

  it('masks every configured secret, including in dependency errors', async () => {
    // PostgreSQL here trusts loopback (the password is ignored); the shared Redis
    // has no password, so AUTH fails and its error is logged; Mosquitto allows anonymous.
    const app = await startTestApp({
      DATABASE_URL: withPassword(db.url, SECRETS.pg),
      REDIS_URL: withPassword(sharedRedisUrl(14), SECRETS.redis),
      MQTT_URL: broker.url.replace('mqtt://', `mqtt://svc:${SECRETS.mqtt}@`),
      ADMIN_API_KEY: SECRETS.admin,
      WS_TOKEN: SECRETS.ws,
      INSTANCE_ID: 'secrets-test',
      LOG_LEVEL: 'trace',
    });
    try {
      await app.app.inject({ method: 'DELETE', url: '/api/devices/x', headers: { 'x-api-key': 'wrong' } });
      await app.app.inject({ method: 'GET', url: '/health' });
      const device = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
      await device.publishAsync('devices/d1/telemetry', 'not json', { qos: 1 });
      await device.endAsync();
    } finally {
      await app.close();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const text = app.logs.join('\n');
    expect(app.logs.length).toBeGreaterThan(10);
    // The Redis AUTH failure was logged (so the error path really ran) …
    expect(text).toMatch(/Redis/);
    // … and no secret appears anywhere.
    for (const secret of Object.values(SECRETS)) expect(text).not.toContain(secret);
  });
});
