// The dashboard's open-alarm list in a real browser (headless Chromium): an
// alarm raised before the page opened is listed; once the device is selected
// (subscribed), its clear arrives as an `alarm` event, the list empties at once
// and the page keeps working (the event is not taken for a request's answer).
//
// Needs /usr/bin/chromium: skipped without it, except under CI=true.
import { CHROMIUM, CHROMIUM_FLAGS, haveChromium, itInBrowser } from '../support/chromium';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { type BrowserContext, chromium } from 'playwright-core';
import { AlarmEvaluationService } from '../../src/alarms/alarm-evaluation.service';
import { startEmbeddedInstance, stopEmbeddedInstance, type EmbeddedInstance } from '../support/embedded-instance';
import { waitFor } from '../support/free-port';
import { telemetryTopic } from '../support/publisher';

describe('dashboard: open alarms', () => {
  let dataDir: string;
  let instance: EmbeddedInstance;

  async function publish(device: MqttClient, ts: number, temp: number): Promise<void> {
    await device.publishAsync(telemetryTopic('oven-1'), JSON.stringify({ ts, metrics: { temp } }), { qos: 1 });
    await instance.app.get(AlarmEvaluationService).idle();
  }

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-e2e-alarms-'));
    instance = await startEmbeddedInstance({ DATA_DIR: dataDir, DATABASE_URL: undefined, REDIS_URL: undefined, ADMIN_API_KEY: 'k' }, 'dashboard-alarms-dev');
  }, 60_000);

  afterAll(async () => {
    await stopEmbeddedInstance(instance);
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  itInBrowser(
    'lists an open alarm and drops it live when it clears',
    async () => {
      if (!haveChromium) throw new Error(`CI=true but ${CHROMIUM} is missing: apt-get install -y chromium`);
      const res = await fetch(`${instance.app.baseUrl}/api/alarm-rules`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': 'k' },
        body: JSON.stringify({ name: 'oven', metric: 'temp', devices: ['oven-1'], condition: { op: '>', value: 250 }, severity: 'critical' }),
      });
      expect(res.status).toBe(201);
      const t0 = Date.now() - 60_000;
      await publish(instance.device, t0, 260);

      const profileDir = await mkdtemp(join(tmpdir(), 'th-chromium-'));
      let context: BrowserContext | undefined;
      const pageErrors: string[] = [];
      try {
        context = await chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
        const page = context.pages()[0] ?? (await context.newPage());
        page.on('pageerror', (error) => pageErrors.push(error.message));
        await page.goto(`${instance.app.baseUrl}/`);
        const item = page.locator('#alarm-list li');
        await item.first().waitFor({ timeout: 10_000 });
        expect(await item.count()).toBe(1);
        const text = await item.first().textContent();
        expect(text).toContain('critical');
        expect(text).toContain('oven-1');
        expect(text).toContain('temp = 260');

        // Clicking the device in the list selects it (and subscribes to it).
        await item.locator('button').click();
        await page.locator('#status[data-state="live"]').waitFor({ timeout: 10_000 });
        await page.locator('#device-title', { hasText: 'oven-1' }).waitFor({ timeout: 10_000 });
        const plotted = async () => Number(await page.locator('#charts').getAttribute('data-points'));
        await waitFor(async () => (await plotted()) >= 1, 10_000, 'the history in the chart');

        // The clear comes as an event: well before the 10-second poll.
        await publish(instance.device, t0 + 1000, 200);
        await page.locator('section.alarms').waitFor({ state: 'hidden', timeout: 5000 });
        // The page still answers live samples afterwards.
        await publish(instance.device, t0 + 2000, 201);
        await waitFor(async () => (await plotted()) >= 3, 10_000, 'the live samples in the chart');
        expect(pageErrors).toEqual([]);
      } finally {
        await context?.close();
        await rm(profileDir, { recursive: true, force: true });
      }
    },
    90_000,
  );
});
