// Graceful shutdown under load (docs/api.md Configuration "Process", §2 delivery). The BUILT
// service runs as its own process on a throw-away database of the shared
// PostgreSQL and a Mosquitto of this test's own; a WebSocket client on /ws is
// subscribed to '*'. Mid-load (a steady QoS 1 stream), the service gets SIGTERM:
// - it exits with code 0 within a few seconds (the test waits up to 12 s, then
//   SIGKILLs it so that the data checks below still run);
// - the WebSocket client sees close code 1001 (going away);
// - it committed and acknowledged what it had taken before exiting: every
//   message it had received by the SIGTERM is stored (batches are made to close
//   only every second, so there is always an open one to flush), no
//   "shutdown without committing" warning, no message partially stored, and
//   every sample it pushed to the WebSocket client is in the database.
// With an external broker the publisher's PUBACK comes from the broker, not
// from the service, so "nothing acknowledged is lost" is checked end to end:
// the service is started again with the same environment (same INSTANCE_ID →
// same client id → same persistent session), drains what the broker kept, and
// every published point is stored exactly once, rollups exact. And since the
// first process acknowledged everything it committed, the broker delivers to
// the second exactly the messages that were not stored yet — not one more.
import { describeWithServers } from '../support/servers';
import { waitFor } from '../support/free-port';
import { WsTestClient } from '../support/ws-client';
import type { ExitInfo } from '../support/app-process';
import { FaultScenario } from '../support/fault-scenario';
import { METRICS, createLoad, ingested, partialMessages, received, sampleCount, verifyStoredExactlyOnce } from '../support/load-check';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('fault');

const MESSAGES = 16_000;
const DEVICES = 200;
const RATE = 4000; // messages/s: ~4 s of publishing, SIGTERM in the middle of it
const WINDOW = 500;
const SIGTERM_AFTER_SAMPLES = Math.floor(MESSAGES * 0.25) * METRICS.length;
const MAX_EXIT_MS = 5000;
/** How long the test waits for the exit before SIGKILLing it to check the data anyway. */
const EXIT_WAIT_MS = 12_000; // beyond the service's own 10 s drain timeout
const FLUSH_INTERVAL_MS = 1000;
const INSTANCE_ID = 'fault-sigterm';

const load = createLoad({ prefix: 'fst', messages: MESSAGES, devices: DEVICES });

describeWithServers(['postgres'])('SIGTERM during ingestion (private broker)', () => {
  let stage: FaultScenario | undefined;
  let ws: WsTestClient | undefined;
  /** Set by the scenario for the checks that follow it. */
  let observed:
    | {
        exit: ExitInfo | 'still running';
        exitedAfterMs: number;
        wsCloseCode: number | undefined;
        wsClosedAfterMs: number;
        receivedAtScrape: number;
        heldAtScrape: number;
        committedByFirst: number;
        partialAfterFirst: number;
        firstLog: Array<Record<string, unknown>>;
        firstStderr: string[];
        pushedNotStored: number;
        pushed: number;
        receivedBySecond: number;
        ingestedBySecond: number;
      }
    | undefined;
  const scenario = () => {
    if (!observed) throw new Error('the SIGTERM scenario above did not complete');
    return observed;
  };

  beforeAll(async () => {
    stage = await FaultScenario.start({ label: 'fault_sigterm' });
  }, 120_000);

  afterAll(async () => {
    await ws?.close().catch(() => undefined);
    await stage?.destroy();
  }, 60_000);

  it('scenario: SIGTERM mid-load, then a restart with the same environment drains the rest', async () => {
    const scene = stage as FaultScenario;
    const database = scene.db;
    const started = Date.now();
    const first = await scene.startApp({
      INSTANCE_ID,
      // Batches close after 1 s (or 5000 messages), so at SIGTERM the service holds
      // up to a second of received, uncommitted messages that shutdown must commit.
      INGEST_FLUSH_INTERVAL_MS: String(FLUSH_INTERVAL_MS),
      INGEST_MAX_BATCH_SAMPLES: String(5000 * METRICS.length),
    });

    const client = await WsTestClient.connect(`${first.baseUrl.replace('http', 'ws')}/ws`);
    ws = client;
    client.send('subscribe', { deviceId: '*' });
    await client.nextEvent('subscribed', (d) => d.deviceId === '*');

    const publishing = await scene.publish(load, { window: WINDOW, ratePerSec: RATE });
    const { progress } = publishing;

    // 1. Part of the stream is committed, and pushed to the WebSocket client.
    await scene.waitForCommitted(SIGTERM_AFTER_SAMPLES);
    await waitFor(() => client.all('sample').length > 0, 5000, 'samples on the WebSocket');

    // 2. SIGTERM mid-load.
    const scraped = await first.metrics();
    const publisherAckedAtSigterm = progress.acked;
    const sigtermAt = Date.now();
    void first.kill('SIGTERM');
    const wsCloseCode = await client.waitClosed(MAX_EXIT_MS).catch(() => undefined);
    const wsClosedAfterMs = Date.now() - sigtermAt;
    const exit = await Promise.race([first.exited, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), EXIT_WAIT_MS))]);
    const exitedAfterMs = Date.now() - sigtermAt;
    if (exit === 'still running') await first.kill('SIGKILL'); // so the data can still be checked

    // 3. What the first process left behind.
    const committedByFirst = await sampleCount(database);
    expect(committedByFirst).toBeGreaterThanOrEqual(SIGTERM_AFTER_SAMPLES);
    expect(committedByFirst).toBeLessThan(load.expectedSamples); // really mid-load
    const pushed = client.all('sample').map((f) => f.data as { deviceId: string; ts: string | number });
    const [pushedNotStored] = await database.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM unnest($1::text[], $2::timestamptz[]) AS p(device_id, ts)
       WHERE NOT EXISTS (SELECT 1 FROM samples s WHERE s.device_id = p.device_id AND s.ts = p.ts)`,
      [pushed.map((p) => p.deviceId), pushed.map((p) => new Date(p.ts).toISOString())],
    );
    const partialAfterFirst = await partialMessages(database);

    // 4. Same environment: same client id, same persistent session; the broker delivers what it kept.
    const second = await scene.restartApp(first);
    const { final } = await scene.drain(second, load, publishing);

    observed = {
      exit,
      exitedAfterMs,
      wsCloseCode,
      wsClosedAfterMs,
      receivedAtScrape: received(scraped),
      heldAtScrape: received(scraped) - ingested(scraped) / METRICS.length,
      committedByFirst,
      partialAfterFirst,
      firstLog: first.logRecords(),
      firstStderr: first.stderr,
      pushedNotStored: pushedNotStored.n,
      pushed: pushed.length,
      receivedBySecond: received(final),
      ingestedBySecond: ingested(final),
    };
    const summary = {
      publisherAckedAtSigterm,
      receivedByFirstAtSigterm: received(scraped),
      committedMessagesByFirstAtSigterm: ingested(scraped) / METRICS.length,
      heldAtSigterm: observed.heldAtScrape,
      committedMessagesByFirst: committedByFirst / METRICS.length,
      committedDuringShutdown: (committedByFirst - ingested(scraped)) / METRICS.length,
      wsSamplesPushed: pushed.length,
      wsCloseCode,
      wsClosedAfterMs,
      exit,
      exitedAfterMs,
      receivedBySecond: received(final),
      ingestedMessagesBySecond: ingested(final) / METRICS.length,
      seconds: (Date.now() - started) / 1000,
    };
    process.stdout.write(`fault-sigterm: ${JSON.stringify(summary)}\n`);
  }, 60_000);

  it('exits with code 0 within 5 s of SIGTERM', () => {
    const o = scenario();
    expect(o.exit).toEqual({ code: 0, signal: null }); // 'still running' = no exit within 12 s
    expect(o.exitedAfterMs).toBeLessThan(MAX_EXIT_MS);
  });

  it('closes the WebSocket client with 1001', () => {
    const o = scenario();
    expect(o.wsCloseCode).toBe(1001);
    expect(o.wsClosedAfterMs).toBeLessThan(MAX_EXIT_MS);
  });

  it('commits what it had received before exiting: nothing partial, nothing pushed live is missing, no warning', () => {
    const o = scenario();
    expect(o.partialAfterFirst).toBe(0);
    expect(o.committedByFirst % METRICS.length).toBe(0);
    // Everything it had received when scraped just before the SIGTERM (and had not
    // committed then: an open batch) was committed before it went away.
    expect(o.heldAtScrape).toBeGreaterThan(0);
    expect(o.committedByFirst / METRICS.length).toBeGreaterThanOrEqual(o.receivedAtScrape);
    // Every sample pushed live was committed first.
    expect(o.pushed).toBeGreaterThan(0);
    expect(o.pushedNotStored).toBe(0);
    expect(o.firstLog.filter((r) => typeof r.msg === 'string' && r.msg.startsWith('shutdown without committing'))).toEqual([]);
    expect(o.firstLog.filter((r) => r.level === 'error' || r.level === 'fatal')).toEqual([]);
    expect(o.firstStderr.filter((l) => l.trim() !== '')).toEqual([]);
  });

  // The first process acknowledged everything it committed before it went away, so the
  // broker delivers to the second exactly the messages that were not stored (a message
  // committed but not acknowledged would come back and be received a second time).
  it('acknowledged what it committed: the second process receives exactly the messages not stored yet', () => {
    const o = scenario();
    expect(o.receivedBySecond).toBe(MESSAGES - o.committedByFirst / METRICS.length);
    expect(o.ingestedBySecond).toBe(load.expectedSamples - o.committedByFirst);
  });

  it('after the restart every published point is stored exactly once, with rollups equal to GROUP BY over samples', async () => {
    scenario();
    await verifyStoredExactlyOnce((stage as FaultScenario).db, load);
  });
});
