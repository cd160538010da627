// The live dashboard (docs/api.md HTTP API `GET /`, fed by §5) in a real browser: the
// app runs in-process in embedded mode, the simulator publishes to its broker,
// headless Chromium opens the page, picks a device, and live points must reach
// the uPlot charts and the latest values. Saves a screenshot: to
// docs/dashboard.png (the README's) with UPDATE_SCREENSHOT=1, else to a temp dir.
// Then the range picker: 1 h, 24 h and 7 d draw buckets of the series route in
// the browser's time zone (Asia/Kolkata here, so hour buckets start at :30
// UTC) and keep folding live samples into them; a server without that route
// gets raw samples and a note.
//
// The series route: when the app answers it (200), the page gets the app's
// answer. When the app has no such route (404 "Cannot GET …"), the test
// answers instead, with buckets computed from the app's raw samples
// (test/support/series-answer.ts), so the page can be tested either way.
//
// Needs /usr/bin/chromium (`apt-get install -y chromium`): skipped without it,
// except under CI=true, where its absence fails the run.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { EmbeddedBroker } from '../../src/broker/embedded-broker';
import { DEFAULT_OPTIONS, type SimulatorOptions } from '../../src/simulator/simulate-options';
import { runSimulation, type SimulationProgress, type SimulationSummary } from '../../src/simulator/simulation';
import { waitFor } from '../support/free-port';
import { bucketStart, intervalMs, type RawSample, seriesAnswer, zoneOffsetMs } from '../support/series-answer';
import { connectDevice } from '../support/publisher';
import { CHROMIUM, CHROMIUM_FLAGS, browserSkipNote, haveChromium, itInBrowser } from '../support/chromium';
import { startTestApp, type TestApp } from '../support/test-app';

const SCREENSHOT =
  process.env.UPDATE_SCREENSHOT === '1' ? join(__dirname, '..', '..', 'docs', 'dashboard.png') : join(tmpdir(), `telemetry-hub-dashboard-${process.pid}.png`);
const DEVICE = 'sim-001';
const BROWSER_TIME_ZONE = 'Asia/Kolkata';
const SERIES_URL = /\/api\/devices\/[^/]+\/series\?/;

describe('dashboard page', () => {
  let dataDir: string;
  let app: TestApp;
  let mqttUrl: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-e2e-dashboard-'));
    app = await startTestApp({ DATA_DIR: dataDir, MQTT_PORT: '0', MQTT_URL: undefined, DATABASE_URL: undefined });
    const port = app.get(EmbeddedBroker).port;
    if (!port) throw new Error('embedded broker is not listening');
    mqttUrl = `mqtt://127.0.0.1:${port}`;
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('serves the page and its assets at fixed paths, leaving /api, /health and /metrics alone', async () => {
    const get = (url: string) => app.app.inject({ method: 'GET', url });
    const page = await get('/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.body).toContain('vendor/uplot.min.js');
    for (const [url, type] of [
      ['/dashboard.js', 'text/javascript'],
      ['/dashboard.css', 'text/css'],
      ['/vendor/uplot.min.js', 'text/javascript'],
      ['/vendor/uplot.min.css', 'text/css'],
    ]) {
      const res = await get(url);
      expect({ url, status: res.statusCode, type: res.headers['content-type'] }).toEqual({ url, status: 200, type: `${type}; charset=utf-8` });
    }
    expect((await get('/vendor/uPlot.d.ts')).statusCode).toBe(404);
    expect((await get('/../package.json')).statusCode).toBe(404);
    expect((await get('/api/devices')).json()).toEqual({ items: [], total: 0 });
    expect((await get('/health')).json()).toMatchObject({ status: 'ok' });
    expect((await get('/metrics')).body).toContain('telemetry_messages_received_total');
  });

  itInBrowser(
    `shows live samples of the selected device in the chart and the latest values${browserSkipNote}`,
    async () => {
      if (!haveChromium) throw new Error(`CI=true but ${CHROMIUM} is missing: apt-get install -y chromium`);

      // 6 devices at 6 msg/s in total: each reports once a second, after 8
      // minutes of history published as batches (so the screenshot has a past;
      // less than the page's 10-minute window, so live points add up).
      const options: SimulatorOptions = {
        ...DEFAULT_OPTIONS,
        url: mqttUrl,
        devices: 6,
        rate: 6,
        duration: 180,
        backfill: 8,
        seed: 7,
        badRatio: 0.02,
      };
      const stop = new AbortController();
      let progress: SimulationProgress | undefined;
      const simulation: Promise<SimulationSummary> = runSimulation(options, {
        signal: stop.signal,
        progressIntervalMs: 100,
        onProgress: (p) => {
          progress = p;
        },
      });
      simulation.catch(() => undefined); // awaited below; avoid an unhandled rejection meanwhile

      let context: BrowserContext | undefined;
      const profileDir = await mkdtemp(join(tmpdir(), 'th-chromium-'));
      const pageErrors: string[] = [];
      try {
        // Live sending starts once the history is acknowledged.
        await waitFor(() => (progress?.acked ?? 0) >= options.devices, 20_000, 'the simulator to go live');
        expect(progress?.backfilled).toBeGreaterThan(options.devices * 400);

        context = await chromium.launchPersistentContext(profileDir, {
          executablePath: CHROMIUM,
          headless: true,
          args: CHROMIUM_FLAGS,
          viewport: { width: 1280, height: 800 },
          timezoneId: BROWSER_TIME_ZONE,
        });
        const page: Page = context.pages()[0] ?? (await context.newPage());
        page.on('pageerror', (error) => pageErrors.push(error.message));
        page.on('console', (message) => {
          // Chromium logs every 4xx fetch; the series route's 404 is expected where the server lacks it.
          if (message.type() === 'error' && !SERIES_URL.test(message.location().url)) pageErrors.push(message.text());
        });

        const samplesOf = async (metric: string | undefined, fromMs: number, toMs = Date.now() + 60_000): Promise<RawSample[]> => {
          const query = new URLSearchParams({ from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), limit: '10000' });
          if (metric) query.set('metric', metric);
          const res = await app.app.inject({ method: 'GET', url: `/api/devices/${DEVICE}/samples?${query}` });
          expect(res.statusCode).toBe(200);
          return (res.json() as { items: RawSample[] }).items;
        };
        const seriesRequests: URL[] = [];
        const seriesAnsweredBy = { app: 0, test: 0 };
        let seriesRouteMissing = false;
        await context.route(SERIES_URL, async (route) => {
          const url = new URL(route.request().url());
          seriesRequests.push(url);
          const notFound = { statusCode: 404, message: `Cannot GET ${url.pathname}${url.search}` };
          if (seriesRouteMissing) return route.fulfill({ status: 404, contentType: 'application/json', body: JSON.stringify(notFound) });
          const response = await route.fetch();
          const body = (await response.json().catch(() => ({}))) as { message?: string };
          if (response.status() !== 404 || !/^Cannot /.test(String(body.message))) {
            if (response.status() === 200) seriesAnsweredBy.app++;
            return route.fulfill({ response });
          }
          seriesAnsweredBy.test++;
          const q = Object.fromEntries(url.searchParams) as { from: string; to: string; interval: string; tz: string };
          const step = intervalMs(q.interval);
          const items = await samplesOf(undefined, Date.parse(q.from) - step, Date.parse(q.to) + step);
          return route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(seriesAnswer(DEVICE, items, q)) });
        });

        await page.goto(`${app.baseUrl}/`);
        await page.locator('#status[data-state="live"]').waitFor({ timeout: 10_000 });
        await page.locator(`#device-list button[data-device-id="${DEVICE}"]`).click();
        expect(await page.locator('#device-title').textContent()).toBe(DEVICE);

        // History first: about 480 readings × 4 metrics (minus gaps).
        const plotted = () => page.locator('#charts').getAttribute('data-points').then(Number);
        await waitFor(async () => (await plotted()) > 1200, 10_000, 'history in the charts');
        const chartMetrics = await page.locator('#charts .chart').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-metric')));
        expect(chartMetrics).toEqual(['temperature', 'humidity', 'pressure', 'battery']);

        // Then live: more points in the charts, and the latest values move on.
        const latestTs = () => page.locator('#latest').getAttribute('data-ts').then(Number);
        const before = { points: await plotted(), ts: await latestTs() };
        await waitFor(async () => (await plotted()) >= before.points + 8 && (await latestTs()) > before.ts, 10_000, 'live samples in the charts').catch(
          async (error: Error) => {
            throw new Error(`${error.message}: before ${JSON.stringify(before)}, now ${await plotted()} points, ts ${await latestTs()}`);
          },
        );
        const temperature = page.locator('#latest .metric-card[data-metric="temperature"]');
        const cardTs = Number(await temperature.getAttribute('data-ts'));
        expect(cardTs).toBeGreaterThan(before.ts);
        expect(Date.now() - cardTs).toBeLessThan(5000);
        const value = Number(await temperature.getAttribute('data-value'));
        expect(value).toBeGreaterThan(5);
        expect(value).toBeLessThan(35);
        expect(await temperature.locator('.value').textContent()).toBe(new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 }).format(value));

        // uPlot itself holds the points: its canvas is drawn and sized.
        const canvases = await page.locator('#charts canvas').evaluateAll((nodes) => nodes.map((n) => Number(n.getAttribute('width'))));
        expect(canvases).toHaveLength(4);
        expect(Math.min(...canvases)).toBeGreaterThan(300);

        // Fleet figures arrived, saying when they were computed (they are cached for minutes).
        await waitFor(async () => (await page.locator('#kpi-devices').textContent()) === String(options.devices), 5000, 'the fleet figures');
        expect(await page.locator('#kpi-age').textContent()).toMatch(/^Fleet figures as of \d\d:\d\d:\d\d \((just now|\d+ s ago|\d+ min ago)\)/);
        expect(await page.locator('#device-list li').count()).toBe(options.devices);

        await waitFor(async () => (await page.locator('#device-list .activity[data-level="live"]').count()) === options.devices, 12_000, 'all devices live');
        await mkdir(join(SCREENSHOT, '..'), { recursive: true });
        await page.screenshot({ path: SCREENSHOT });
        expect(seriesRequests).toEqual([]); // 10 minutes: raw samples only

        // Longer ranges: buckets of the series route, then live samples folded in.
        const temperatureChart = page.locator('#charts .chart[data-metric="temperature"]');
        const chartNumber = (name: string) => temperatureChart.getAttribute(name).then(Number);
        // The zone as the browser names it (Chromium says Asia/Calcutta, an alias that PostgreSQL and Intl know too).
        const browserZone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
        expect(zoneOffsetMs(browserZone, Date.now())).toBe(zoneOffsetMs(BROWSER_TIME_ZONE, Date.now()));
        expect(zoneOffsetMs(browserZone, Date.now())).toBe(5.5 * 3_600_000);
        const pageBuckets = async () => ((await temperatureChart.getAttribute('data-buckets')) ?? '').split(',').filter(Boolean).map(Number);
        for (const [range, interval, rangeMs] of [
          ['1h', '1m', 3_600_000],
          ['24h', '5m', 86_400_000],
          ['7d', '1h', 7 * 86_400_000],
        ] as const) {
          const step = intervalMs(interval);
          const bucketsOf = (samples: RawSample[]) => new Set(samples.map((s) => bucketStart(Date.parse(s.ts), step, BROWSER_TIME_ZONE)));
          const stored = await samplesOf('temperature', Date.now() - rangeMs);
          const asked = seriesRequests.length;
          await page.locator(`#range button[data-range="${range}"]`).click();
          expect(await page.locator(`#range button[data-range="${range}"]`).getAttribute('aria-pressed')).toBe('true');
          await page.locator(`#charts[data-mode="series"][data-range="${range}"]`).waitFor({ timeout: 5000 });
          await waitFor(async () => (await temperatureChart.count()) === 1 && (await chartNumber('data-points')) > 0, 10_000, `the ${range} series`);

          const request = seriesRequests[asked];
          expect(request.pathname).toBe(`/api/devices/${DEVICE}/series`);
          expect({ interval: request.searchParams.get('interval'), tz: request.searchParams.get('tz'), fill: request.searchParams.get('fill') }).toEqual({
            interval,
            tz: browserZone,
            fill: 'null',
          });
          expect(request.searchParams.get('agg')?.split(',').sort()).toEqual(['avg', 'count', 'max', 'min']);
          expect(Date.parse(request.searchParams.get('to') ?? '') - Date.parse(request.searchParams.get('from') ?? '')).toBe(rangeMs);

          // Every stored sample is in a bucket, aligned on the browser's clock, and nothing else is.
          const shown = { samples: await chartNumber('data-samples'), buckets: await pageBuckets() };
          const storedNow = await samplesOf('temperature', Date.now() - rangeMs);
          expect(shown.samples).toBeGreaterThanOrEqual(stored.length);
          expect(shown.samples).toBeLessThanOrEqual(storedNow.length);
          for (const b of bucketsOf(stored)) expect(shown.buckets).toContain(b);
          for (const b of shown.buckets) expect(bucketsOf(storedNow).has(b)).toBe(true);
          expect(await page.locator('#charts .chart').count()).toBe(4);
          expect(await page.locator('#range-note').isHidden()).toBe(true);

          // Live samples keep arriving into the (aligned) buckets.
          // (30 s: the simulated device may fall silent for up to 20 readings.)
          await waitFor(async () => (await chartNumber('data-samples')) >= shown.samples + 2, 30_000, `live samples in the ${range} buckets`);
          const later = await samplesOf('temperature', Date.now() - rangeMs);
          for (const b of await pageBuckets()) expect(bucketsOf(later).has(b)).toBe(true);
        }
        expect(seriesRequests.length).toBeGreaterThanOrEqual(3);
        expect(seriesAnsweredBy.app + seriesAnsweredBy.test).toBe(seriesRequests.length);

        // A server without the series route: the page says so and shows raw samples of the range.
        seriesRouteMissing = true;
        await page.reload(); // same device (URL hash) and range (7 d, remembered)
        await page.locator('#range-note').waitFor({ state: 'visible', timeout: 10_000 });
        expect(await page.locator('#range-note').textContent()).toContain('raw samples');
        expect(await page.locator('#range button[data-range="7d"]').getAttribute('aria-pressed')).toBe('true');
        expect(await page.locator('#charts').getAttribute('data-mode')).toBe('raw');
        await waitFor(async () => (await plotted()) > 1200, 10_000, 'raw samples of the range');
        await page.locator('#range button[data-range="10m"]').click();
        expect(await page.locator('#range-note').isHidden()).toBe(true);
        await waitFor(async () => (await plotted()) > 1200, 10_000, 'the last 10 minutes again');

        // Device status: online now; an "offline" on its status topic shows at once, and its next message brings it back.
        const dot = page.locator(`#device-list button[data-device-id="${DEVICE}"] .activity`);
        expect(await dot.getAttribute('title')).toMatch(/^online/);
        const statusPublisher = await connectDevice(mqttUrl);
        try {
          await statusPublisher.publishAsync(`devices/${DEVICE}/status`, 'offline', { qos: 1 });
        } finally {
          await statusPublisher.endAsync();
        }
        // Dot and text are drawn together; read them together, since the device's next sample brings it back online within a second.
        const infoWhenOffline = await page.waitForFunction(
          `(() => {
            const dot = document.querySelector('#device-list button[data-device-id="${DEVICE}"] .activity');
            return dot && dot.dataset.level === 'offline' ? document.querySelector('#device-info').textContent : false;
          })()`,
          undefined,
          { timeout: 5000, polling: 'raf' },
        );
        expect(await infoWhenOffline.jsonValue()).toMatch(/^offline · /);
        await dot.and(page.locator('[data-level="live"]')).waitFor({ timeout: 10_000 });
        expect(pageErrors).toEqual([]);
      } finally {
        await context?.close().catch(() => undefined);
        await rm(profileDir, { recursive: true, force: true });
        stop.abort();
      }
      const summary = await simulation;
      expect(summary.errors).toBe(0);
      expect(summary.unacknowledged).toBe(0);
    },
    150_000,
  );
});
