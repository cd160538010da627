// Alarms on the embedded PostgreSQL (PGlite, no DATABASE_URL) and embedded
// broker: the same SQL (partial unique index, outbox claims with SKIP LOCKED,
// gen_random_uuid) must work there too.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AlarmEvaluationService } from '../../src/alarms/alarm-evaluation.service';
import { startEmbeddedInstance, stopEmbeddedInstance, type EmbeddedInstance } from '../support/embedded-instance';
import { waitFor } from '../support/free-port';
import { telemetryTopic } from '../support/publisher';
import { WebhookReceiver } from '../support/webhook-receiver';

describe('alarms on embedded PostgreSQL', () => {
  let dir: string;
  let instance: EmbeddedInstance;
  let receiver: WebhookReceiver;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'th-alarms-'));
    receiver = await WebhookReceiver.create();
    instance = await startEmbeddedInstance({ DATA_DIR: dir, DATABASE_URL: undefined, REDIS_URL: undefined, ADMIN_API_KEY: 'k' }, 'alarms-embedded-dev');
  }, 120_000);

  afterAll(async () => {
    await stopEmbeddedInstance(instance);
    await receiver?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('raises, clears and delivers both webhooks', async () => {
    const res = await fetch(`${instance.app.baseUrl}/api/alarm-rules`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'k' },
      body: JSON.stringify({
        name: 'r',
        metric: 'rpm',
        devices: '*',
        condition: { op: '>', value: 3000 },
        clear: { hysteresis: 100 },
        severity: 'minor',
        webhookUrl: receiver.url,
      }),
    });
    expect(res.status).toBe(201);
    const t0 = Date.now() - 60_000;
    for (const [dt, rpm] of [
      [0, 3500],
      [1000, 2950],
      [2000, 2900],
    ]) {
      await instance.device.publishAsync(telemetryTopic('pump'), JSON.stringify({ ts: t0 + dt, metrics: { rpm } }), { qos: 1 });
      await instance.app.get(AlarmEvaluationService).idle();
    }
    const { items } = (await (await fetch(`${instance.app.baseUrl}/api/alarms?deviceId=pump`)).json()) as { items: Array<Record<string, unknown>> };
    expect(items).toEqual([expect.objectContaining({ status: 'cleared', value: 3500, clearedAt: new Date(t0 + 2000).toISOString() })]);
    await waitFor(() => receiver.received.length === 2, 15_000, 'two webhooks');
    expect(receiver.received.map((h) => h.json.type).sort()).toEqual(['alarm.cleared', 'alarm.raised']);
    // No secret configured: unsigned.
    expect(receiver.received[0].headers['x-telemetry-signature']).toBeUndefined();
  });
});
