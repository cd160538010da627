// PostgreSQL outage during ingestion (docs/api.md Ingestion delivery, §4 /health; README
// "Bounded memory"). The BUILT service runs as its own process against a
// PostgreSQL cluster and a Mosquitto of this test's own (private-postgres.ts,
// private-mosquitto.ts), so stopping the database touches nothing shared.
//
// Mid-load, PostgreSQL is stopped (`pg_ctl stop -m fast`: open transactions are
// rolled back and every client is disconnected) for ~5 s while the publisher
// keeps publishing at a steady rate. Meanwhile:
// - the process stays up and keeps answering GET /health/live;
// - GET /health answers 503 with checks.postgres.status "down" within 2 s;
// - the service stops taking messages from the broker once
//   INGEST_MAX_PENDING_MESSAGES are un-acknowledged: at every scrape
//   received - committed <= the limit, and received stops growing while the
//   broker holds far more for it (bounded memory, TCP back-pressure);
// - "PostgreSQL unreachable" is logged exactly once.
// Then PostgreSQL starts again on the same port: /health is 200 again, the
// retried batches and the backlog commit, every published point is stored
// exactly once and the hourly rollups equal a GROUP BY over samples.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PG_BIN } from '../support/private-postgres';
import { waitFor } from '../support/free-port';
import { FaultScenario, fetchHealth as health, type HealthBody } from '../support/fault-scenario';
import { METRICS, createLoad, ingested, partialMessages, received, verifyStoredExactlyOnce } from '../support/load-check';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('fault');

const MESSAGES = 16_000;
const DEVICES = 200;
const RATE = 2000; // messages/s: ~8 s of publishing, the outage in the middle of it
const WINDOW = 500;
const MAX_PENDING = 2000;
const OUTAGE_MS = 5000;
const STOP_AFTER_SAMPLES = Math.floor(MESSAGES * 0.15) * METRICS.length;
const INSTANCE_ID = 'fault-postgres';
const load = createLoad({ prefix: 'pgo', messages: MESSAGES, devices: DEVICES });

interface Poll {
  at: number; // ms since the stop completed
  live: number;
  health: number;
  body: HealthBody | undefined;
  received: number;
  ingested: number;
  publisherAcked: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const describeIfPostgresBinaries = existsSync(join(PG_BIN, 'initdb')) ? describe : describe.skip;

describeIfPostgresBinaries('PostgreSQL stopped during ingestion (private cluster and broker)', () => {
  let stage: FaultScenario | undefined;

  beforeAll(async () => {
    stage = await FaultScenario.start({ label: 'fault_postgres', postgres: 'private' });
  }, 120_000);

  afterAll(async () => {
    await stage?.destroy();
  }, 60_000);

  it('stays up, reports down, holds at most INGEST_MAX_PENDING_MESSAGES, and stores everything once after PostgreSQL returns', async () => {
    const scene = stage as FaultScenario;
    const db = scene.postgres;
    const started = Date.now();
    const first = await scene.startApp({ INSTANCE_ID, INGEST_MAX_PENDING_MESSAGES: String(MAX_PENDING) });
    expect((await health(first)).status).toBe(200);

    const publishing = await scene.publish(load, { window: WINDOW, ratePerSec: RATE });
    const { progress } = publishing;

    // 1. Part of the stream is committed.
    await scene.waitForCommitted(STOP_AFTER_SAMPLES);

    // 2. Stop PostgreSQL (fast: in-flight writes are rolled back, connections cut).
    const beforeStop = await first.metrics();
    await db.stop('fast');
    const stoppedAt = Date.now();
    const publisherAckedAtStop = progress.acked;

    // 3. Watch the service for the outage.
    const polls: Poll[] = [];
    while (Date.now() - stoppedAt < OUTAGE_MS) {
      const [live, h, text] = await Promise.all([
        first.fetch('/health/live', { signal: AbortSignal.timeout(3000) }).then(async (r) => (await r.arrayBuffer(), r.status)),
        health(first),
        first.metrics(),
      ]);
      polls.push({
        at: Date.now() - stoppedAt,
        live,
        health: h.status,
        body: h.body,
        received: received(text),
        ingested: ingested(text),
        publisherAcked: progress.acked,
      });
      await sleep(100);
    }
    const last = polls[polls.length - 1];

    // The process stays up and live throughout.
    expect(first.running).toBe(true);
    expect(polls.every((p) => p.live === 200)).toBe(true);

    // /health: 503 with postgres down within 2 s, and from then on until the restart.
    const firstDown = polls.findIndex((p) => p.health === 503);
    expect(firstDown).toBeGreaterThanOrEqual(0);
    const downAfterMs = polls[firstDown].at;
    expect(downAfterMs).toBeLessThanOrEqual(2000);
    for (const p of polls.slice(firstDown)) {
      expect(p.health).toBe(503);
      expect(p.body?.status).toBe('down');
      expect(p.body?.checks.postgres.status).toBe('down');
      expect(p.body?.checks.mqtt.status).toBe('up');
    }

    // Bounded memory. Every message is valid and unique and the MQTT connection is
    // not interrupted, so received - committed messages = the messages the service holds.
    const receivedAtStop = received(beforeStop);
    const committedAtStop = ingested(beforeStop) / METRICS.length;
    const held = polls.map((p) => p.received - p.ingested / METRICS.length);
    expect(Math.max(...held)).toBeLessThanOrEqual(MAX_PENDING);
    // Messages taken during the outage: at most the limit, plus what commits freed
    // between the scrape before the stop and the stop itself.
    const committedDuringStop = last.ingested / METRICS.length - committedAtStop;
    const takenDuringOutage = last.received - receivedAtStop;
    expect(takenDuringOutage).toBeLessThanOrEqual(MAX_PENDING + committedDuringStop);
    // Nothing commits while PostgreSQL is down...
    expect(polls.every((p) => p.ingested === polls[0].ingested)).toBe(true);
    // ...so once the limit is reached the service stops taking messages: nothing was
    // taken in the last 2 s of the outage,
    const plateau = polls.filter((p) => p.at >= OUTAGE_MS - 2000);
    expect(plateau.length).toBeGreaterThan(5);
    expect(new Set(plateau.map((p) => p.received)).size).toBe(1);
    expect(held[held.length - 1]).toBe(MAX_PENDING);
    // ...while the broker held many more for it (the publisher kept going: the broker acks it).
    const leftWithBroker = last.publisherAcked - last.received;
    expect(leftWithBroker).toBeGreaterThan(MAX_PENDING);

    // 4. PostgreSQL comes back on the same port.
    await db.start();
    const restartedAt = Date.now();
    await waitFor(async () => (await health(first)).status === 200, 10_000, '/health to answer 200 again');
    const healthyAfterMs = Date.now() - restartedAt;
    const healthy = await health(first);
    expect(healthy.body?.checks.postgres.status).toBe('up');

    const { final, storedAt } = await scene.drain(first, load, publishing);
    const resumedAfterMs = storedAt - restartedAt;
    expect(first.running).toBe(true);

    // 5. Every published point exactly once; rollups exact.
    expect(await partialMessages(db)).toBe(0);
    await verifyStoredExactlyOnce(db, load);
    expect(ingested(final)).toBe(load.expectedSamples);

    // 6. One line for each change of reachability, not one per retry or health check.
    const messages = first.logRecords().map((r) => r.msg);
    expect(messages.filter((m) => m === 'PostgreSQL unreachable')).toHaveLength(1);
    expect(messages.filter((m) => m === 'PostgreSQL reachable again')).toHaveLength(1);
    const unreachable = first.logRecords().find((r) => r.msg === 'PostgreSQL unreachable');
    expect(unreachable?.level).toBe('error');

    const summary = {
      publisherAckedAtStop,
      receivedAtStop,
      committedAtStop,
      downAfterMs,
      polls: polls.length,
      takenDuringOutage,
      committedDuringStop,
      heldAtEndOfOutage: held[held.length - 1],
      maxHeld: Math.max(...held),
      leftWithBrokerAtEndOfOutage: leftWithBroker,
      healthyAfterMs,
      allStoredAfterRestartMs: resumedAfterMs,
      receivedTotal: received(final),
      redelivered: received(final) - MESSAGES,
      seconds: (Date.now() - started) / 1000,
    };
    process.stdout.write(`fault-postgres-outage: ${JSON.stringify(summary)}\n`);
  }, 60_000);
});
