// Broker restart during ingestion (docs/api.md Ingestion: persistent session, redelivery,
// stored once). The BUILT service runs as its own process on a throw-away
// database of the shared PostgreSQL and a Mosquitto of this test's own, with
// the project's mosquitto.conf (persistence true, unlimited queue/in-flight).
//
// To make the restart bite, the broker must be holding messages for the
// service's persistent session when it goes down: the test stalls the
// service's writes with `LOCK TABLE samples IN EXCLUSIVE MODE` (as
// kill-redelivery does), so the service fills up to INGEST_MAX_PENDING_MESSAGES
// un-acknowledged messages and stops reading, while the publisher (acked by
// the broker) keeps going and the rest queues in the broker. Then:
// - Mosquitto gets SIGTERM (it saves its persistence file);
// - the lock is released: the stalled writes commit, but the broker is gone,
//   so their PUBACKs are lost and the broker must redeliver those messages;
// - Mosquitto starts again on the same port from its persistence file;
// - the service reconnects and resubscribes by itself (session present), and
//   /health reports mqtt up again;
// - then the publisher (clean:false, fixed client id) reconnects, retries its
//   own un-acked QoS 1 publishes and completes. It waits for the service's
//   resubscription because Mosquitto 2.0 drops messages published to a shared
//   group that has no subscribed member (it does not persist $share subscriptions).
// Checked separately, so a failure says which guarantee broke:
// - every message the broker had acknowledged to the publisher before it
//   stopped is stored (they existed only in the broker's persistence file);
// - the messages published after the restart are stored (the service really
//   receives again, not just "connected");
// - every published point exactly once, rollups exact.
import { describeWithServers } from '../support/servers';
import { waitFor } from '../support/free-port';
import { FaultScenario, fetchHealth as health } from '../support/fault-scenario';
import {
  METRICS,
  createLoad,
  ingested,
  missingRanges,
  partialMessages,
  received,
  sampleCount,
  storedMessages,
  verifyStoredExactlyOnce,
} from '../support/load-check';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('fault');

const MESSAGES = 12_000;
const DEVICES = 200;
const RATE = 3000; // messages/s
const WINDOW = 500;
const MAX_PENDING = 2000;
const STALLED_OBSERVATION_MS = 1500; // broker down, service still at its limit
const BROKER_DOWN_MS = 1000; // broker down after the service noticed
const STALL_AFTER_SAMPLES = Math.floor(MESSAGES * 0.1) * METRICS.length;
const INSTANCE_ID = 'fault-broker';

const load = createLoad({ prefix: 'fbr', messages: MESSAGES, devices: DEVICES });

/** ['up','up','down'] → { up: 2, down: 1 } */
function tally(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of values) out[v] = (out[v] ?? 0) + 1;
  return out;
}

describeWithServers(['postgres'])('Mosquitto restarted during ingestion (private broker)', () => {
  let stage: FaultScenario | undefined;
  /** Set by the scenario for the checks that follow it. */
  let outcome: { ackedBeforeStop: number; sentBeforeRestart: number; stored: boolean[] } | undefined;

  beforeAll(async () => {
    stage = await FaultScenario.start({ label: 'fault_broker' });
  }, 120_000);

  afterAll(async () => {
    await stage?.destroy();
  }, 60_000);

  it('reconnects and resubscribes by itself to its persisted session; the publisher completes', async () => {
    const scene = stage as FaultScenario;
    const database = scene.db;
    const mqttBroker = scene.broker;
    const started = Date.now();
    const first = await scene.startApp({ INSTANCE_ID, INGEST_MAX_PENDING_MESSAGES: String(MAX_PENDING) });
    const subscribedLines = () => first.logRecords().filter((r) => r.msg === 'subscribed');

    // A publisher that survives the restart: persistent session, retries its un-acked publishes.
    // It reconnects only once the service has resubscribed (see step 6): Mosquitto
    // 2.0 does not restore a $share subscription from its persistence file, so a
    // message published into the group while no member is subscribed is dropped
    // by the broker, before the service could ever see it (a broker limitation,
    // documented in docs/reliability.md; messages queued for the service's
    // session before the restart do survive, and are checked below).
    const publishing = await scene.publish(load, { window: WINDOW, ratePerSec: RATE }, { clean: false, reconnectPeriod: 0 });
    const { client: publisher, progress } = publishing;
    publisher.on('error', () => undefined); // connection refused while the broker is down
    let publisherReconnects = 0;
    publisher.on('reconnect', () => publisherReconnects++);

    // 1. Part of the stream commits.
    await scene.waitForCommitted(STALL_AFTER_SAMPLES);

    // 2. Stall the service's writes until it holds its limit and the broker queues the rest.
    const stall = await scene.stallWrites('fault-broker-lock');
    let atStop = { received: 0, ingested: 0, publisherAcked: 0 };
    await waitFor(
      async () => {
        const text = await first.metrics();
        atStop = { received: received(text), ingested: ingested(text), publisherAcked: progress.acked };
        const held = atStop.received - atStop.ingested / METRICS.length;
        return held >= MAX_PENDING && atStop.publisherAcked - atStop.received >= 1000;
      },
      15_000,
      'the service to hold its limit and the broker to queue 1000 more',
    );
    const committedBeforeRestart = await sampleCount(database);

    // 3. Stop the broker: SIGTERM (it saves its persistence file).
    await mqttBroker.stop('SIGTERM');
    const stoppedAt = Date.now();
    const ackedBeforeStop = progress.acked;
    // While the service is at its limit it reads nothing from the socket, so it does
    // not see the broker's FIN yet and /health still says mqtt up (reported). Observed, not asserted.
    const mqttWhileStalled: string[] = [];
    while (Date.now() - stoppedAt < STALLED_OBSERVATION_MS) {
      mqttWhileStalled.push((await health(first)).body?.checks.mqtt.status ?? 'no answer');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    // 4. Let the stalled writes commit. Their PUBACKs cannot reach the stopped broker:
    //    the broker must redeliver those messages from its persistence file.
    await stall.release();
    const releasedAt = Date.now();
    await waitFor(async () => (await health(first)).body?.checks.mqtt.status === 'down', 10_000, '/health to report mqtt down');
    const mqttDownAfterReleaseMs = Date.now() - releasedAt;
    const duringOutage = await health(first);
    expect(duringOutage.status).toBe(503);
    expect(duringOutage.body?.status).toBe('down');
    expect(duringOutage.body?.checks.postgres.status).toBe('up');
    expect(first.running).toBe(true);

    // 5. Start the broker again on the same port, from its persistence file.
    await new Promise((resolve) => setTimeout(resolve, BROKER_DOWN_MS));
    const sentBeforeRestart = progress.sent;
    await mqttBroker.restart();
    const restartedAt = Date.now();
    const brokerDownMs = restartedAt - stoppedAt;

    // 6. The service reconnects and resubscribes by itself, to its persisted session.
    await waitFor(() => subscribedLines().length >= 2, 15_000, 'the service to resubscribe');
    // Keep the stores: reconnect() would otherwise start empty and forget the un-acked publishes.
    publisher.reconnect({ incomingStore: publisher.incomingStore, outgoingStore: publisher.outgoingStore });
    const resubscribed = subscribedLines()[1];
    expect(resubscribed.sessionPresent).toBe(true);
    expect(resubscribed.clientId).toBe(`telemetry-hub-${INSTANCE_ID}`);
    await waitFor(async () => (await health(first)).status === 200, 10_000, '/health to answer 200 again');
    const healthyAfterMs = Date.now() - restartedAt;
    expect((await health(first)).body?.checks.mqtt.status).toBe('up');
    expect(first.logRecords().filter((r) => r.msg === 'MQTT broker disconnected').length).toBeGreaterThanOrEqual(1);

    // 7. The publisher completes (its un-acked publishes retried after its reconnect), and
    //    everything the service will get, it gets: all stored, or idle for 2 s.
    const { final } = await scene.drain(first, load, publishing);
    expect(publisherReconnects).toBeGreaterThan(0);
    expect(first.running).toBe(true);
    expect(await partialMessages(database)).toBe(0);
    const stored = await storedMessages(database, load);
    outcome = { ackedBeforeStop, sentBeforeRestart, stored };

    const summary = {
      committedMessagesBeforeStall: committedBeforeRestart / METRICS.length,
      receivedAtStop: atStop.received,
      heldByServiceAtStop: atStop.received - atStop.ingested / METRICS.length,
      queuedInBrokerAtStop: atStop.publisherAcked - atStop.received,
      publisherAckedAtStop: ackedBeforeStop,
      publisherSentBeforeRestart: sentBeforeRestart,
      mqttCheckWhileStalled: tally(mqttWhileStalled),
      mqttDownAfterReleaseMs,
      brokerDownMs,
      healthyAfterRestartMs: healthyAfterMs,
      publisherReconnects,
      receivedTotal: received(final),
      ingestedMessages: ingested(final) / METRICS.length,
      storedMessages: stored.filter(Boolean).length,
      missing: missingRanges(stored, 0, 5),
      seconds: (Date.now() - started) / 1000,
    };
    process.stdout.write(`fault-broker-restart: ${JSON.stringify(summary)}\n`);
  }, 60_000);

  it('stores every message the broker had acknowledged before it stopped (they survived in its persistence file)', () => {
    if (!outcome) throw new Error('the scenario above did not complete');
    const beforeStop = outcome.stored.slice(0, outcome.ackedBeforeStop);
    expect(missingRanges(beforeStop)).toEqual([]);
  });

  it('stores the messages published after the restart (the service receives again, not just reconnects)', () => {
    if (!outcome) throw new Error('the scenario above did not complete');
    const afterRestart = outcome.stored.slice(outcome.sentBeforeRestart);
    expect(afterRestart.length).toBeGreaterThan(1000);
    expect(missingRanges(afterRestart, outcome.sentBeforeRestart)).toEqual([]);
  });

  it('stores every published point exactly once, with rollups equal to GROUP BY over samples', async () => {
    if (!outcome) throw new Error('the scenario above did not complete');
    await verifyStoredExactlyOnce((stage as FaultScenario).db, load);
  });
});
