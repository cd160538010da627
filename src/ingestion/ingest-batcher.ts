// Turns a stream of messages into committed batches. Parsing happens as a
// message arrives; samples accumulate until the batch is large enough or old
// enough, then one SampleWriter call commits them and only then are the
// messages acknowledged. Memory is bounded by maxPendingMessages: a message
// offered while that many are un-acknowledged waits (unparsed) until a commit
// frees a slot, and its source learns only then that it was taken, which
// propagates back-pressure to the broker when PostgreSQL is slow or down.
//
// Two writers run at once, each owning the devices whose id hashes to its
// lane: concurrent batches then never touch the same rollup or device rows,
// so neither waits on the other's row locks (two writers on shared devices
// reached 121k rows/s in a PostgreSQL-only loop, on disjoint devices
// 141–176k). One lane commits in order, so a device's batches commit in the
// order they arrived.
import { Inject, Injectable, Logger } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { RateLimitedLog } from '../logging/rate-limited-log';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { DatabaseService } from '../storage/database.service';
import { SampleWriter } from '../storage/sample-writer';
import type { IngestMessage } from './ingest-message';
import { parseTelemetry } from './payload-parser';
import type { DeviceSeen, Sample } from '../telemetry/sample';
import { TelemetryEvents } from '../telemetry/telemetry-events';

class Batch {
  readonly samples: Sample[] = [];
  readonly acks: Array<() => void> = [];
  readonly receivedAt: number[] = [];
  readonly devices = new Map<string, DeviceSeen>();

  add(deviceId: string, samples: Sample[], receivedAtMs: number, ack: () => void): void {
    for (let i = 0; i < samples.length; i++) this.samples.push(samples[i]);
    this.acks.push(ack);
    this.receivedAt.push(receivedAtMs);
    const seen = this.devices.get(deviceId);
    if (!seen) this.devices.set(deviceId, { deviceId, firstSeenMs: receivedAtMs, lastSeenMs: receivedAtMs });
    else if (receivedAtMs > seen.lastSeenMs) seen.lastSeenMs = receivedAtMs;
  }
}

const LANES = 2;

/** A device's lane: FNV-1a over the id's UTF-16 code units. */
export function laneOf(deviceId: string, lanes: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) hash = Math.imul(hash ^ deviceId.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % lanes;
}

/** One writer: the batch being filled, the batches cut and waiting, and whether one is being written. */
class Lane {
  current = new Batch();
  readonly queued: Batch[] = [];
  flushing = false;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;

@Injectable()
export class IngestBatcher {
  private readonly logger = new Logger('Ingest');
  private readonly rejectLog = new RateLimitedLog((msg, fields) => this.logger.warn({ msg, ...fields }));
  private readonly lanes = Array.from({ length: LANES }, () => new Lane());
  private timer: NodeJS.Timeout | undefined;
  private pending = 0; // messages handed over and not yet acked
  private readonly waiting: Array<{ message: IngestMessage; onAccepted?: () => void }> = [];
  private idleWaiters: Array<() => void> = [];
  private stopped = false;
  private draining = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly writer: SampleWriter,
    private readonly db: DatabaseService,
    private readonly metrics: TelemetryMetrics,
    private readonly events: TelemetryEvents,
  ) {}

  /** Updated per batch (cut and commit), not per message. */
  private updateGauges(): void {
    this.metrics.ingestPending.set(this.pending);
    this.metrics.ingestWaiting.set(this.waiting.length);
  }

  get pendingMessages(): number {
    return this.pending;
  }

  hasCapacity(): boolean {
    return this.pending < this.config.ingest.maxPendingMessages;
  }

  /** Messages offered but not yet taken because the batcher is full. */
  get waitingMessages(): number {
    return this.waiting.length;
  }

  /**
   * Takes the message now if there is room, otherwise as soon as a commit
   * frees a slot (in order). `onAccepted` runs once it has been taken.
   */
  offer(message: IngestMessage, onAccepted?: () => void): void {
    if (this.waiting.length === 0 && this.hasCapacity()) {
      this.accept(message);
      onAccepted?.();
      return;
    }
    this.waiting.push({ message, onAccepted });
  }

  accept(message: IngestMessage): void {
    this.metrics.messagesReceived.inc();
    const result = parseTelemetry(message.topic, message.payload, message.receivedAtMs);
    if (!result.ok) {
      this.metrics.messagesRejected.labels(result.reason).inc();
      this.rejectLog.log('message rejected', { topic: message.topic.slice(0, 200), reason: result.reason, detail: result.detail });
      message.ack();
      return;
    }
    this.pending++;
    const lane = this.lanes[laneOf(result.deviceId, LANES)];
    lane.current.add(result.deviceId, result.samples, message.receivedAtMs, message.ack);
    if (lane.current.samples.length >= this.config.ingest.maxBatchSamples) this.cutLane(lane);
    else if (!this.timer) this.timer = setTimeout(() => this.cut(), this.config.ingest.flushIntervalMs);
  }

  /** Flushes everything accepted so far and resolves once it is committed and acked. */
  async drain(): Promise<void> {
    this.draining = true;
    this.cut();
    if (this.pending === 0 && this.waiting.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops retrying failed batches (used at shutdown when the database is gone). */
  stop(): void {
    this.stopped = true;
  }

  /** Cuts every lane's batch (the flush interval ran out, or shutdown). */
  private cut(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.updateGauges();
    for (const lane of this.lanes) this.cutLane(lane);
  }

  /**
   * While a lane is writing, its next batch keeps filling (up to
   * maxBatchSamples) instead of being cut into many small ones: the end of
   * the write cuts it, so a batch holds what arrived during the last write.
   */
  private cutLane(lane: Lane): void {
    if (lane.current.samples.length === 0) return;
    if (lane.flushing && lane.current.samples.length < this.config.ingest.maxBatchSamples) return;
    lane.queued.push(lane.current);
    lane.current = new Batch();
    this.pump(lane);
  }

  private pump(lane: Lane): void {
    if (lane.flushing || lane.queued.length === 0) return;
    const batch = lane.queued.shift() as Batch;
    lane.flushing = true;
    void this.flush(batch).finally(() => {
      lane.flushing = false;
      if (lane.queued.length > 0) this.pump(lane);
      else this.afterWrite(lane);
    });
  }

  /** The batch that filled during a write goes now if its first message has waited a flush interval, else when it has. */
  private afterWrite(lane: Lane): void {
    const first = lane.current.receivedAt[0];
    if (first === undefined) return;
    const waited = Date.now() - first;
    if (waited >= this.config.ingest.flushIntervalMs) this.cutLane(lane);
    else if (!this.timer) this.timer = setTimeout(() => this.cut(), this.config.ingest.flushIntervalMs - waited);
  }

  private async flush(batch: Batch): Promise<void> {
    let delay = RETRY_MIN_MS;
    for (;;) {
      const started = performance.now();
      const startedAt = Date.now();
      try {
        const devices = [...batch.devices.values()];
        const stored = await this.writer.write(batch.samples, devices);
        this.db.markReachable(true, undefined, startedAt);
        this.metrics.ingestFlushSeconds.observe((performance.now() - started) / 1000);
        this.committed(batch, stored, devices);
        return;
      } catch (error) {
        this.db.markReachable(false, error, startedAt);
        if (this.stopped) return; // leave the messages un-acked: the broker redelivers them
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }

  private committed(batch: Batch, stored: readonly Sample[], devices: readonly DeviceSeen[]): void {
    const now = Date.now();
    for (const ack of batch.acks) ack();
    for (const t of batch.receivedAt) this.metrics.ingestLagSeconds.observe((now - t) / 1000);
    this.metrics.samplesIngested.inc(stored.length);
    this.metrics.ingestBatchSize.observe(batch.samples.length);
    this.pending -= batch.acks.length;
    // After commit and ack: the latest cache, live fan-out and other consumers.
    this.events.emit('batch.committed', { samples: stored, devices });
    this.release();
  }

  private release(): void {
    // accept() takes the slot synchronously, so exactly as many wait as there is room for.
    while (this.waiting.length > 0 && this.hasCapacity()) {
      const { message, onAccepted } = this.waiting.shift() as { message: IngestMessage; onAccepted?: () => void };
      this.accept(message);
      onAccepted?.();
    }
    // While shutting down, what was waiting is written at once rather than after the flush interval.
    if (this.draining) this.cut();
    this.updateGauges();
    if (this.waiting.length > 0) return;
    if (this.pending === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }
}
