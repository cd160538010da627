// Runs a simulation: one MQTT connection publishing, for every simulated
// device in turn, one reading to devices/<id>/telemetry at a steady total rate.
// `--rate` is the total: with 100 devices at 50 msg/s each device reports
// every 2 s. A device in a gap skips its turn (counted as `skipped`), so the
// achieved rate is slightly below the target. QoS 1 publishing pauses while
// `maxInflight` messages await their PUBACK, so a slow broker slows the
// simulator instead of filling its memory.
import mqtt, { type MqttClient } from 'mqtt';
import { BAD_PAYLOAD_KINDS, badPayload, createRng, DeviceSignal, encodeReading } from './device-signals';
import { maskUrl, type SimulatorOptions } from './simulate-options';

export interface SimulationProgress {
  elapsedMs: number;
  /** Messages handed to the client (valid and malformed). */
  sent: number;
  /** QoS 1 messages the broker acknowledged (QoS 0: messages written out). */
  acked: number;
  /** Publishes that failed. */
  errors: number;
  /** Times the connection was lost (mqtt.js reconnects and resends unacknowledged QoS 1 messages). */
  disconnects: number;
  /** Malformed messages sent on purpose (`--bad-ratio`). */
  bad: number;
  /** Turns skipped because the device was in a gap. */
  skipped: number;
  /** History readings published first (`--backfill`), in batch messages not counted in `sent`. */
  backfilled: number;
  /** Turns skipped because the device was silenced (`--silent`). */
  silenced: number;
  /** Device connections cut without DISCONNECT (`--will` devices going silent): the broker publishes their will. */
  killed: number;
  /** QoS 1 messages unacknowledged on a connection when it was cut (lost with the "crash", not errors). */
  lostInCrash: number;
  inflight: number;
  /** Messages per second over the last few seconds. */
  ratePerSec: number;
  connected: boolean;
}

export interface SimulationSummary extends SimulationProgress {
  devices: number;
  qos: 0 | 1;
  url: string;
  /** Sent messages per second over the whole run. */
  averageRatePerSec: number;
  /** Publish → PUBACK, QoS 1 only. */
  ackLatencyMs: { p50: number; p95: number; max: number } | null;
  /** Stopped by the caller (Ctrl-C) before the duration was over. */
  interrupted: boolean;
  /** QoS 1 messages still unacknowledged when the simulator gave up waiting. */
  unacknowledged: number;
}

export interface SimulationHooks {
  onProgress?: (progress: SimulationProgress) => void;
  progressIntervalMs?: number;
  /** Abort to stop early (then in-flight messages get `drainTimeoutMs` to be acknowledged). */
  signal?: AbortSignal;
  /** How long to wait for outstanding PUBACKs at the end (default 10 s). */
  drainTimeoutMs?: number;
  /** Called once connected, before the first message. */
  onStart?: () => void;
  /** Time source, for tests. */
  now?: () => number;
}

export class SimulationError extends Error {}

const TICK_MS = 10;
/** Readings per backfill message: ≈ 100 bytes each, well under the 64 KiB / 1000-reading limits. */
const BACKFILL_BATCH = 400;
/** At most this many history readings per device. */
const BACKFILL_MAX_PER_DEVICE = 10_000;
const CONNECT_TIMEOUT_MS = 5000;
/** Keep at most this many latency samples (reservoir) for the percentiles. */
const LATENCY_SAMPLES = 50_000;

export function deviceIds(count: number, prefix: string): string[] {
  const width = Math.max(3, String(count).length);
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i + 1).padStart(width, '0')}`);
}

/** A device's own connection, whose Last Will tells the service it went offline. */
function connectWithWill(url: string, deviceId: string): Promise<MqttClient> {
  return connect(url, {
    clientId: `telemetry-sim-${deviceId}-${Math.random().toString(36).slice(2, 8)}`,
    will: { topic: `devices/${deviceId}/status`, payload: Buffer.from('offline'), qos: 1, retain: false },
  });
}

/** Which devices go silent, and when: `--silent` of them, picked by the seed, for one period of the run. */
export function silencePlan(options: Pick<SimulatorOptions, 'devices' | 'silent' | 'silentAfter' | 'silentFor' | 'seed'>): {
  silent: ReadonlySet<number>;
  fromMs: number;
  untilMs: number;
} {
  const count = Math.round(options.devices * options.silent);
  const rng = createRng(options.seed ^ 0x517e);
  const order = Array.from({ length: options.devices }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { silent: new Set(order.slice(0, count)), fromMs: options.silentAfter * 1000, untilMs: (options.silentAfter + options.silentFor) * 1000 };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function connect(url: string, extra: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    protocolVersion: 4, // the embedded broker speaks MQTT 3.1.1
    clientId: `telemetry-sim-${Math.random().toString(36).slice(2, 10)}`,
    clean: true,
    connectTimeout: CONNECT_TIMEOUT_MS,
    reconnectPeriod: 1000,
    ...extra,
  });
  return new Promise((resolve, reject) => {
    const fail = (reason: string) => {
      cleanup();
      client.end(true);
      reject(new SimulationError(`cannot connect to ${maskUrl(url)}: ${reason}`));
    };
    const onConnect = () => {
      cleanup();
      resolve(client);
    };
    const onError = (error: Error) => fail(error.message);
    const onClose = () => fail('connection closed (is the broker running?)');
    const timer = setTimeout(() => fail(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`), CONNECT_TIMEOUT_MS + 500);
    const cleanup = () => {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
    };
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

/**
 * Publishes the last `options.backfill` minutes of each device's signal, at its
 * live reporting interval, as batch messages, and waits for them to be
 * acknowledged; the same signal then continues live, so curves join up.
 */
async function backfill(
  client: MqttClient,
  devices: DeviceSignal[],
  topics: string[],
  options: SimulatorOptions,
  now: () => number,
  stats: SimulationProgress,
): Promise<void> {
  const spanMs = options.backfill * 60_000;
  const stepMs = Math.max((options.devices / options.rate) * 1000, spanMs / BACKFILL_MAX_PER_DEVICE);
  const end = now();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < devices.length; i++) {
    let batch: string[] = [];
    const send = () => {
      const readings = batch;
      batch = [];
      pending.push(
        client.publishAsync(topics[i], `[${readings.join(',')}]`, { qos: options.qos }).then(
          () => {
            stats.backfilled += readings.length;
          },
          () => {
            stats.errors++;
          },
        ),
      );
    };
    for (let ts = Math.round(end - spanMs); ts < end; ts += stepMs) {
      const t = Math.round(ts);
      const reading = devices[i].next(t);
      if (reading) batch.push(encodeReading(t, reading));
      if (batch.length === BACKFILL_BATCH) send();
    }
    if (batch.length > 0) send();
    if (pending.length >= options.maxInflight) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
}

export async function runSimulation(options: SimulatorOptions, hooks: SimulationHooks = {}): Promise<SimulationSummary> {
  const now = hooks.now ?? Date.now;
  const client = await connect(options.url);
  hooks.onStart?.();
  const devices = deviceIds(options.devices, options.prefix).map((id) => new DeviceSignal(id, options.seed));
  const topics = devices.map((d) => `devices/${d.deviceId}/telemetry`);
  const rng = createRng(options.seed ^ 0x5eed);
  const qos = options.qos;
  const totalSlots = Math.max(1, Math.round(options.rate * options.duration));

  const stats = emptyProgress();
  const plan = silencePlan(options);
  // --will: the first devices publish over connections of their own (index → client).
  const own = new Map<number, MqttClient>();
  const reconnecting = new Set<number>();
  if (options.will) {
    const count = Math.min(options.willDevices, devices.length);
    for (let i = 0; i < count; i += 50) {
      const batch = Array.from({ length: Math.min(50, count - i) }, (_, k) => i + k);
      const clients = await Promise.all(batch.map((index) => connectWithWill(options.url, devices[index].deviceId)));
      batch.forEach((index, k) => {
        clients[k].on('error', () => undefined);
        own.set(index, clients[k]);
      });
    }
  }
  /** A will device going silent crashes: its socket is cut with no DISCONNECT, so the broker publishes its will. */
  const killedClients = new WeakSet<MqttClient>();
  const kill = (index: number) => {
    const victim = own.get(index);
    if (!victim) return;
    own.delete(index);
    killedClients.add(victim);
    victim.options.reconnectPeriod = 0;
    victim.stream.destroy();
    victim.end(true);
    stats.killed++;
  };
  const revive = (index: number) => {
    if (own.has(index) || reconnecting.has(index) || !options.will || index >= options.willDevices) return;
    reconnecting.add(index);
    connectWithWill(options.url, devices[index].deviceId).then(
      (fresh) => {
        reconnecting.delete(index);
        fresh.on('error', () => undefined);
        own.set(index, fresh);
      },
      () => {
        reconnecting.delete(index);
        stats.errors++;
      },
    );
  };
  const latencies: number[] = [];
  let latencyCount = 0;
  const recordLatency = (ms: number) => {
    latencyCount++;
    if (latencies.length < LATENCY_SAMPLES) latencies.push(ms);
    else {
      const i = Math.floor(rng() * latencyCount);
      if (i < LATENCY_SAMPLES) latencies[i] = ms;
    }
  };

  client.on('error', () => undefined); // connection errors: mqtt.js reconnects; 'close' counts them
  client.on('connect', () => {
    stats.connected = true;
  });
  client.on('close', () => {
    if (stats.connected) stats.disconnects++;
    stats.connected = false;
  });

  if (options.backfill > 0) await backfill(client, devices, topics, options, now, stats);

  const start = now();
  let slot = 0;
  const rateWindow: Array<{ t: number; sent: number }> = [{ t: start, sent: 0 }];

  const snapshot = (): SimulationProgress => {
    const t = now();
    stats.elapsedMs = t - start;
    while (rateWindow.length > 1 && t - rateWindow[0].t > 3000) rateWindow.shift();
    const oldest = rateWindow[0];
    stats.ratePerSec = t > oldest.t ? ((stats.sent - oldest.sent) * 1000) / (t - oldest.t) : 0;
    return { ...stats };
  };

  const publishOne = () => {
    const index = slot % devices.length;
    slot++;
    const ts = now();
    if (plan.silent.has(index)) {
      const t = ts - start;
      if (t >= plan.fromMs && t < plan.untilMs) {
        kill(index);
        stats.silenced++;
        return;
      }
      revive(index);
    }
    const via = options.will && index < options.willDevices ? own.get(index) : client;
    if (!via) {
      stats.silenced++; // its new connection is not up yet
      return;
    }
    let payload: string;
    if (options.badRatio > 0 && rng() < options.badRatio) {
      payload = badPayload(BAD_PAYLOAD_KINDS[Math.floor(rng() * BAD_PAYLOAD_KINDS.length)], ts);
      stats.bad++;
    } else {
      const reading = devices[index].next(ts);
      if (!reading) {
        stats.skipped++;
        return;
      }
      payload = encodeReading(ts, reading);
    }
    stats.sent++;
    stats.inflight++;
    const sentAt = now();
    via.publish(topics[index], payload, { qos }, (error) => {
      stats.inflight--;
      if (error) {
        // A message still in flight when its device "crashed" is lost with it, on purpose.
        if (killedClients.has(via)) stats.lostInCrash++;
        else stats.errors++;
        return;
      }
      stats.acked++;
      if (qos === 1) recordLatency(now() - sentAt);
    });
  };

  // Pace by wall clock: after t seconds, rate × t turns are due.
  await new Promise<void>((resolve) => {
    let progressTimer: NodeJS.Timeout | undefined;
    const finish = () => {
      clearInterval(timer);
      clearInterval(progressTimer);
      hooks.signal?.removeEventListener('abort', finish);
      resolve();
    };
    const timer = setInterval(() => {
      const due = Math.min(totalSlots, Math.floor(((now() - start) / 1000) * options.rate));
      while (slot < due && (qos === 0 || stats.inflight < options.maxInflight)) publishOne();
      if (slot >= totalSlots) finish();
    }, TICK_MS);
    if (hooks.onProgress) {
      progressTimer = setInterval(() => {
        const p = snapshot();
        rateWindow.push({ t: now(), sent: stats.sent });
        hooks.onProgress?.(p);
      }, hooks.progressIntervalMs ?? 250);
    }
    if (hooks.signal?.aborted) finish();
    else hooks.signal?.addEventListener('abort', finish);
  });
  const interrupted = hooks.signal?.aborted === true && slot < totalSlots;
  const sendingMs = now() - start;

  // Wait for outstanding acknowledgements, then disconnect cleanly.
  const drainUntil = now() + (hooks.drainTimeoutMs ?? 10_000);
  while (stats.inflight > 0 && now() < drainUntil) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const final = snapshot();
  const unacknowledged = stats.inflight;
  await client.endAsync(unacknowledged > 0).catch(() => undefined);
  // A clean DISCONNECT: the broker discards these wills (the devices then time out as usual).
  await Promise.all([...own.values()].map((c) => c.endAsync(unacknowledged > 0).catch(() => undefined)));

  latencies.sort((a, b) => a - b);
  return {
    ...final,
    devices: options.devices,
    qos,
    url: maskUrl(options.url),
    averageRatePerSec: sendingMs > 0 ? (stats.sent * 1000) / sendingMs : 0,
    ackLatencyMs:
      qos === 1 && latencies.length > 0 ? { p50: percentile(latencies, 50), p95: percentile(latencies, 95), max: latencies[latencies.length - 1] } : null,
    interrupted,
    unacknowledged,
  };
}

/** Progress before anything was sent. */
export function emptyProgress(): SimulationProgress {
  return {
    elapsedMs: 0,
    sent: 0,
    acked: 0,
    errors: 0,
    disconnects: 0,
    bad: 0,
    skipped: 0,
    backfilled: 0,
    silenced: 0,
    killed: 0,
    lostInCrash: 0,
    inflight: 0,
    ratePerSec: 0,
    connected: true,
  };
}
