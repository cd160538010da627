// IngestBatcher against a fake SampleWriter whose writes the test resolves or
// rejects by hand, so "acknowledged only after commit" is checked at every step
// rather than inferred from timing.
import { Logger } from '@nestjs/common';
import type { Counter } from 'prom-client';
import type { AppConfig, IngestTuning } from '../config/app-config';
import { loadConfig } from '../config/load-config';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import type { DatabaseService } from '../storage/database.service';
import type { SampleWriter } from '../storage/sample-writer';
import { IngestBatcher, laneOf } from './ingest-batcher';
import { TelemetryEvents, type TelemetryEventMap } from '../telemetry/telemetry-events';
import type { IngestMessage } from './ingest-message';
import type { DeviceSeen, Sample } from '../telemetry/sample';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

interface WriteCall {
  samples: Sample[];
  devices: DeviceSeen[];
  /** Resolve with the samples that were new (the writer's contract), or reject. */
  result: Deferred<readonly Sample[]>;
  /** Resolves as if every sample of the batch was new. */
  commitAll(): void;
}

/** A SampleWriter whose every write stays pending until the test settles it. */
class FakeWriter {
  readonly calls: WriteCall[] = [];
  write = (samples: readonly Sample[], devices: readonly DeviceSeen[]): Promise<readonly Sample[]> => {
    const result = deferred<readonly Sample[]>();
    const copy = [...samples];
    this.calls.push({ samples: copy, devices: devices.map((d) => ({ ...d })), result, commitAll: () => result.resolve(copy) });
    return result.promise;
  };
}

class FakeDatabase {
  readonly reachability: Array<{ ok: boolean; error?: unknown }> = [];
  markReachable(ok: boolean, error?: unknown): void {
    this.reachability.push({ ok, error });
  }
}

const RECEIVED_AT = Date.UTC(2026, 0, 10, 12, 0, 0);
let seq = 0;

interface TestMessage {
  message: IngestMessage;
  ack: jest.Mock;
  ts: number;
}

/** A valid single-sample message with a unique ts and (by default) two metrics. */
function telemetry(deviceId = 'dev-1', metrics: Record<string, number> = { a: 1, b: 2 }, receivedAtMs = RECEIVED_AT): TestMessage {
  const ts = RECEIVED_AT - 3_600_000 + seq++ * 1000;
  return raw(`devices/${deviceId}/telemetry`, JSON.stringify({ ts, metrics }), receivedAtMs, ts);
}

function raw(topic: string, payload: string, receivedAtMs = RECEIVED_AT, ts = NaN): TestMessage {
  const ack = jest.fn();
  return { message: { topic, payload: Buffer.from(payload), receivedAtMs, ack }, ack, ts };
}

/** Lets promise callbacks (write → commit → acks) run. Real setImmediate even under fake timers. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

function tracked<T>(promise: Promise<T>): { done: () => boolean; promise: Promise<T> } {
  let done = false;
  void promise.then(() => {
    done = true;
  });
  return { done: () => done, promise };
}

async function counterValue(counter: Counter, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await counter.get();
  const match = values.find((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want));
  return match?.value ?? 0;
}

describe('IngestBatcher', () => {
  let writer: FakeWriter;
  let db: FakeDatabase;
  let metrics: TelemetryMetrics;
  let warn: jest.SpiedFunction<Logger['warn']>;
  let events: TelemetryEvents;
  let listenerErrors: unknown[];

  function makeBatcher(ingest: Partial<IngestTuning> = {}): IngestBatcher {
    const base = loadConfig({});
    const config: AppConfig = {
      ...base,
      ingest: { maxBatchSamples: 1000, flushIntervalMs: 60_000, maxPendingMessages: 1000, ...ingest },
    };
    return new IngestBatcher(config, writer as unknown as SampleWriter, db as unknown as DatabaseService, metrics, events);
  }

  beforeEach(() => {
    writer = new FakeWriter();
    db = new FakeDatabase();
    metrics = new TelemetryMetrics();
    listenerErrors = [];
    events = new TelemetryEvents((_event, error) => listenerErrors.push(error));
    // Keep the output clean; the reject test checks what would have been logged.
    warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
  });

  afterEach(() => {
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  it('writes a batch as soon as it holds maxBatchSamples samples, without waiting for the timer', async () => {
    const batcher = makeBatcher({ maxBatchSamples: 6, flushIntervalMs: 60_000 });
    const m1 = telemetry('dev-1', { a: 1, b: 2 });
    const m2 = telemetry('dev-3', { a: 3, b: 4 });
    const m3 = telemetry('dev-1', { a: 5, b: 6 });
    batcher.accept(m1.message);
    batcher.accept(m2.message);
    await settle();
    expect(writer.calls).toHaveLength(0);

    batcher.accept(m3.message);
    expect(writer.calls).toHaveLength(1);
    expect(writer.calls[0].samples).toEqual([
      { deviceId: 'dev-1', metric: 'a', ts: m1.ts, value: 1 },
      { deviceId: 'dev-1', metric: 'b', ts: m1.ts, value: 2 },
      { deviceId: 'dev-3', metric: 'a', ts: m2.ts, value: 3 },
      { deviceId: 'dev-3', metric: 'b', ts: m2.ts, value: 4 },
      { deviceId: 'dev-1', metric: 'a', ts: m3.ts, value: 5 },
      { deviceId: 'dev-1', metric: 'b', ts: m3.ts, value: 6 },
    ]);
    expect(writer.calls[0].devices.map((d) => d.deviceId).sort()).toEqual(['dev-1', 'dev-3']);

    // The next message opens a new batch.
    batcher.accept(telemetry().message);
    await settle();
    expect(writer.calls).toHaveLength(1);
    const drained = batcher.drain();
    for (const call of writer.calls) call.commitAll();
    await settle();
    writer.calls[1].commitAll();
    await drained;
    expect(writer.calls).toHaveLength(2);
  });

  it('writes a partial batch flushIntervalMs after its first message', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const batcher = makeBatcher({ maxBatchSamples: 1000, flushIntervalMs: 50 });
    const m1 = telemetry();
    const m2 = telemetry();
    batcher.accept(m1.message);
    await jest.advanceTimersByTimeAsync(30);
    batcher.accept(m2.message); // must not restart the batch's clock
    await jest.advanceTimersByTimeAsync(19);
    expect(writer.calls).toHaveLength(0);
    await jest.advanceTimersByTimeAsync(1);
    expect(writer.calls).toHaveLength(1);
    expect(writer.calls[0].samples.map((s) => s.ts)).toEqual([m1.ts, m1.ts, m2.ts, m2.ts]);

    // Nothing accepted since: the timer does not produce empty writes.
    await jest.advanceTimersByTimeAsync(500);
    expect(writer.calls).toHaveLength(1);
  });

  it('acknowledges messages only after the write resolves, each exactly once', async () => {
    const batcher = makeBatcher();
    const events: string[] = [];
    const msgs = [telemetry(), telemetry(), telemetry()];
    msgs.forEach((m, i) => m.ack.mockImplementation(() => events.push(`ack ${i}`)));
    for (const m of msgs) batcher.accept(m.message);
    const drained = tracked(batcher.drain());
    expect(writer.calls).toHaveLength(1);
    await settle();
    for (const m of msgs) expect(m.ack).not.toHaveBeenCalled();
    expect(batcher.pendingMessages).toBe(3);

    events.push('write resolved');
    writer.calls[0].commitAll();
    await drained.promise;
    expect(events).toEqual(['write resolved', 'ack 0', 'ack 1', 'ack 2']);
    for (const m of msgs) expect(m.ack).toHaveBeenCalledTimes(1);
    expect(batcher.pendingMessages).toBe(0);
    expect(db.reachability.at(-1)).toEqual({ ok: true, error: undefined });
    expect(await counterValue(metrics.samplesIngested)).toBe(6);
    expect(await counterValue(metrics.messagesReceived)).toBe(3);
  });

  it('acknowledges rejected messages at once, counts them by reason and keeps them out of the write', async () => {
    const batcher = makeBatcher();
    const before = telemetry('dev-ok', { v: 1 });
    const notJson = raw('devices/dev-bad/telemetry', '{not json');
    const badTopic = raw('devices/a/b/telemetry', JSON.stringify({ metrics: { v: 1 } }));
    // One bad sample rejects the whole batch payload, its valid sample included.
    const mixedBatch = raw(
      'devices/dev-bad/telemetry',
      JSON.stringify([
        { ts: RECEIVED_AT, metrics: { v: 1 } },
        { ts: RECEIVED_AT, metrics: { v: 'x' } },
      ]),
    );
    const after = telemetry('dev-ok', { v: 2 });

    for (const m of [before, notJson, badTopic, mixedBatch, after]) batcher.accept(m.message);
    expect(notJson.ack).toHaveBeenCalledTimes(1);
    expect(badTopic.ack).toHaveBeenCalledTimes(1);
    expect(mixedBatch.ack).toHaveBeenCalledTimes(1);
    expect(before.ack).not.toHaveBeenCalled();
    expect(after.ack).not.toHaveBeenCalled();
    expect(batcher.pendingMessages).toBe(2);
    expect(await counterValue(metrics.messagesRejected, { reason: 'invalid_json' })).toBe(1);
    expect(await counterValue(metrics.messagesRejected, { reason: 'bad_topic' })).toBe(1);
    expect(await counterValue(metrics.messagesRejected, { reason: 'invalid_value' })).toBe(1);
    expect(await counterValue(metrics.messagesRejected, { reason: 'invalid_shape' })).toBe(0);
    expect(await counterValue(metrics.messagesReceived)).toBe(5);
    // The reason is logged (rate-limited elsewhere), never the payload.
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ msg: 'message rejected', reason: 'invalid_json', topic: 'devices/dev-bad/telemetry' }));
    expect(warn).toHaveBeenCalledWith(expect.objectContaining({ msg: 'message rejected', reason: 'bad_topic' }));
    expect(JSON.stringify(warn.mock.calls)).not.toContain('{not json');

    const drained = batcher.drain();
    expect(writer.calls).toHaveLength(1);
    expect(writer.calls[0].samples).toEqual([
      { deviceId: 'dev-ok', metric: 'v', ts: before.ts, value: 1 },
      { deviceId: 'dev-ok', metric: 'v', ts: after.ts, value: 2 },
    ]);
    expect(writer.calls[0].devices.map((d) => d.deviceId)).toEqual(['dev-ok']);
    writer.calls[0].commitAll();
    await drained;
    expect(before.ack).toHaveBeenCalledTimes(1);
    expect(after.ack).toHaveBeenCalledTimes(1);
    expect(notJson.ack).toHaveBeenCalledTimes(1); // not acked a second time by the commit
  });

  it('retries a failed write and holds the acks until a retry succeeds', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const batcher = makeBatcher();
    const msgs = [telemetry(), telemetry()];
    for (const m of msgs) batcher.accept(m.message);
    const drained = tracked(batcher.drain());
    const failure = Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });

    for (let attempt = 1; attempt <= 3; attempt++) {
      expect(writer.calls).toHaveLength(attempt);
      writer.calls[attempt - 1].result.reject(failure);
      await settle();
      expect(db.reachability.at(-1)).toEqual({ ok: false, error: failure });
      for (const m of msgs) expect(m.ack).not.toHaveBeenCalled();
      expect(batcher.hasCapacity()).toBe(true);
      expect(drained.done()).toBe(false);
      // Back-off: advance fake time until the next attempt starts (no assumption on the delay).
      for (let waited = 0; writer.calls.length === attempt && waited < 60_000; waited += 50) await jest.advanceTimersByTimeAsync(50);
    }
    expect(writer.calls).toHaveLength(4);
    // Every retry writes the same samples.
    for (const call of writer.calls) expect(call.samples).toEqual(writer.calls[0].samples);
    expect(writer.calls[0].samples).toHaveLength(4);

    writer.calls[3].commitAll();
    await drained.promise;
    for (const m of msgs) expect(m.ack).toHaveBeenCalledTimes(1);
    expect(db.reachability.at(-1)).toEqual({ ok: true, error: undefined });
    expect(await counterValue(metrics.samplesIngested)).toBe(4);
    expect(batcher.pendingMessages).toBe(0);
  });

  it('after stop(), leaves a failed batch un-acked for redelivery instead of retrying forever', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const batcher = makeBatcher();
    const m = telemetry();
    batcher.accept(m.message);
    void batcher.drain();
    batcher.stop();
    writer.calls[0].result.reject(new Error('database gone'));
    await settle();
    await jest.advanceTimersByTimeAsync(60_000);
    expect(writer.calls).toHaveLength(1);
    expect(m.ack).not.toHaveBeenCalled();
    expect(batcher.pendingMessages).toBe(1);
  });

  it('refuses capacity at maxPendingMessages un-acked messages and gives it back after a commit', async () => {
    const batcher = makeBatcher({ maxPendingMessages: 3 });
    expect(batcher.hasCapacity()).toBe(true);
    const first = telemetry();
    const firstTaken = jest.fn();
    batcher.offer(first.message, firstTaken); // room: taken at once
    expect(firstTaken).toHaveBeenCalledTimes(1);

    const msgs = [first, telemetry(), telemetry()];
    batcher.accept(msgs[1].message);
    expect(batcher.hasCapacity()).toBe(true);
    batcher.accept(msgs[2].message);
    expect(batcher.hasCapacity()).toBe(false);
    expect(batcher.pendingMessages).toBe(3);

    // A rejected message is acked at once and does not take a slot.
    const bad = raw('devices/dev-1/telemetry', 'nope');
    batcher.accept(bad.message);
    expect(bad.ack).toHaveBeenCalledTimes(1);
    expect(batcher.pendingMessages).toBe(3);

    const late = telemetry();
    const lateTaken = jest.fn();
    batcher.offer(late.message, lateTaken);
    expect(batcher.waitingMessages).toBe(1);
    const drained = tracked(batcher.drain());
    await settle();
    expect(writer.calls).toHaveLength(1);
    expect(lateTaken).not.toHaveBeenCalled(); // written but not committed: still full

    writer.calls[0].commitAll();
    await settle();
    expect(lateTaken).toHaveBeenCalledTimes(1);
    expect(batcher.pendingMessages).toBe(1);
    expect(drained.done()).toBe(false); // the late message is not committed yet
    for (const m of msgs) expect(m.ack).toHaveBeenCalledTimes(1);
    await settle();
    for (let i = 0; writer.calls.length < 2 && i < 100; i++) await new Promise((r) => setTimeout(r, 10));
    writer.calls[1].commitAll();
    await drained.promise;
    expect(batcher.pendingMessages).toBe(0);
    expect(late.ack).toHaveBeenCalledTimes(1);
  });

  it('lets exactly as many waiting messages in as a commit frees slots', async () => {
    const batcher = makeBatcher({ maxPendingMessages: 2 });
    batcher.accept(telemetry().message);
    batcher.accept(telemetry().message);
    const taken = Array.from({ length: 5 }, () => jest.fn());
    for (const onTaken of taken) batcher.offer(telemetry().message, onTaken);
    expect(batcher.waitingMessages).toBe(5);
    void batcher.drain();
    await settle();
    writer.calls[0].commitAll();
    await settle();
    expect(taken.filter((f) => f.mock.calls.length === 1)).toHaveLength(2);
    expect(batcher.pendingMessages).toBe(2);
    expect(batcher.waitingMessages).toBe(3);
  });

  it('keeps capacity taken while a write fails and frees it only when a retry commits', async () => {
    jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
    const batcher = makeBatcher({ maxPendingMessages: 1 });
    const m = telemetry();
    batcher.accept(m.message);
    const next = telemetry();
    const nextTaken = jest.fn();
    batcher.offer(next.message, nextTaken);
    void batcher.drain();
    writer.calls[0].result.reject(new Error('timeout'));
    await settle();
    for (let waited = 0; writer.calls.length === 1 && waited < 60_000; waited += 50) await jest.advanceTimersByTimeAsync(50);
    expect(writer.calls).toHaveLength(2);
    expect(nextTaken).not.toHaveBeenCalled();
    expect(batcher.hasCapacity()).toBe(false);
    writer.calls[1].commitAll();
    await settle();
    expect(nextTaken).toHaveBeenCalledTimes(1);
    expect(batcher.pendingMessages).toBe(1);
    expect(m.ack).toHaveBeenCalledTimes(1);
  });

  it('drain() resolves only once every accepted message of every batch is committed', async () => {
    // Two samples per message and two per batch: one batch per message.
    const batcher = makeBatcher({ maxBatchSamples: 2 });
    const msgs = [telemetry(), telemetry(), telemetry()];
    for (const m of msgs) batcher.accept(m.message);
    const drained = tracked(batcher.drain());
    await settle();
    expect(writer.calls.length).toBeGreaterThanOrEqual(1);
    const batchOf = (call: WriteCall) => msgs.findIndex((m) => m.ts === call.samples[0].ts);

    // Commit out of order: the later batch first. Only its own message is acked.
    const later = writer.calls.length > 1 ? writer.calls[1] : writer.calls[0];
    later.commitAll();
    await settle();
    const laterIndex = batchOf(later);
    msgs.forEach((m, i) => expect(m.ack).toHaveBeenCalledTimes(i === laterIndex ? 1 : 0));
    expect(drained.done()).toBe(false);

    // Commit the rest as they are written.
    for (let guard = 0; !drained.done() && guard < 10; guard++) {
      const open = writer.calls.filter((c) => c !== later);
      for (const call of open) call.commitAll();
      await settle();
      if (!drained.done()) expect(msgs.some((m) => m.ack.mock.calls.length === 0)).toBe(true);
    }
    expect(drained.done()).toBe(true);
    expect(writer.calls).toHaveLength(3);
    for (const m of msgs) expect(m.ack).toHaveBeenCalledTimes(1);
    expect(batcher.pendingMessages).toBe(0);
  });

  it('drain() resolves at once when nothing is pending', async () => {
    const batcher = makeBatcher();
    await batcher.drain();
    batcher.accept(raw('devices/dev-1/telemetry', '[]').message); // rejected: nothing to commit
    await batcher.drain();
    expect(writer.calls).toHaveLength(0);
  });

  it('announces batch.committed with only the samples the write really stored, and counts those as ingested', async () => {
    const batcher = makeBatcher();
    const seen: Array<{ batch: TelemetryEventMap['batch.committed']; acked: number }> = [];
    const msgs = [telemetry('dev-1', { t: 20 }), telemetry('dev-3', { t: 21 })];
    events.on('batch.committed', () => {
      throw new Error('a broken listener');
    });
    events.on('batch.committed', (batch) => seen.push({ batch, acked: msgs.filter((m) => m.ack.mock.calls.length > 0).length }));
    for (const m of msgs) batcher.accept(m.message);
    const drained = batcher.drain();
    await settle();
    expect(seen).toEqual([]); // nothing before the commit
    expect(writer.calls[0].samples).toHaveLength(2);

    // dev-1's point was already stored (a redelivery): the writer reports only dev-3's as new.
    writer.calls[0].result.resolve([writer.calls[0].samples[1]]);
    await drained;
    expect(seen).toHaveLength(1);
    expect(seen[0].batch.samples).toEqual([{ deviceId: 'dev-3', metric: 't', ts: msgs[1].ts, value: 21 }]);
    // Every device of the batch is announced, also one whose only point was a duplicate.
    expect(seen[0].batch.devices.map((d) => d.deviceId).sort()).toEqual(['dev-1', 'dev-3']);
    expect(String(listenerErrors[0])).toContain('a broken listener');
    // Both messages are acked all the same: the duplicate is stored (once), just not new.
    expect(seen[0].acked).toBe(2);
    for (const m of msgs) expect(m.ack).toHaveBeenCalledTimes(1);
    expect(await counterValue(metrics.samplesIngested)).toBe(1);
  });

  it('reports each device once per batch with its first and last receive time', async () => {
    const batcher = makeBatcher();
    batcher.accept(telemetry('dev-1', { v: 1 }, RECEIVED_AT + 100).message);
    batcher.accept(telemetry('dev-3', { v: 1 }, RECEIVED_AT + 200).message);
    batcher.accept(telemetry('dev-1', { v: 1 }, RECEIVED_AT + 300).message);
    const drained = batcher.drain();
    const devices = [...writer.calls[0].devices].sort((a, b) => a.deviceId.localeCompare(b.deviceId));
    expect(devices).toEqual([
      { deviceId: 'dev-1', firstSeenMs: RECEIVED_AT + 100, lastSeenMs: RECEIVED_AT + 300 },
      { deviceId: 'dev-3', firstSeenMs: RECEIVED_AT + 200, lastSeenMs: RECEIVED_AT + 200 },
    ]);
    writer.calls[0].commitAll();
    await drained;
  });

  describe('lanes (two writers, each owning the devices that hash to it)', () => {
    // dev-1 and dev-3 share a lane, dev-2 is in the other (checked below).
    it('puts a device always in the same lane, and spreads many devices over both', () => {
      expect([laneOf('dev-1', 2), laneOf('dev-3', 2), laneOf('dev-2', 2)]).toEqual([0, 0, 1]);
      const lanes = Array.from({ length: 1000 }, (_, i) => laneOf(`bench-${i}`, 2));
      const inFirst = lanes.filter((l) => l === 0).length;
      expect(inFirst).toBeGreaterThan(400);
      expect(inFirst).toBeLessThan(600);
    });

    it('writes batches of devices in different lanes at once, never mixing their devices', async () => {
      const batcher = makeBatcher({ maxBatchSamples: 1 });
      const a = telemetry('dev-1', { t: 1 });
      const b = telemetry('dev-2', { t: 2 });
      batcher.accept(a.message);
      batcher.accept(b.message);
      expect(writer.calls).toHaveLength(2);
      expect(writer.calls.map((c) => c.samples.map((s) => s.deviceId))).toEqual([['dev-1'], ['dev-2']]);
      // The second lane commits first: its message is acked without waiting for the first.
      writer.calls[1].commitAll();
      await settle();
      expect(b.ack).toHaveBeenCalledTimes(1);
      expect(a.ack).not.toHaveBeenCalled();
      writer.calls[0].commitAll();
      await settle();
      expect(a.ack).toHaveBeenCalledTimes(1);
    });

    it('commits one lane in order: the next batch of a lane is written only after the previous one committed', async () => {
      const batcher = makeBatcher({ maxBatchSamples: 1 });
      const first = telemetry('dev-1', { t: 1 });
      const second = telemetry('dev-3', { t: 2 });
      batcher.accept(first.message);
      batcher.accept(second.message);
      expect(writer.calls).toHaveLength(1);
      writer.calls[0].commitAll();
      await settle();
      expect(first.ack).toHaveBeenCalledTimes(1);
      expect(writer.calls).toHaveLength(2);
      expect(writer.calls[1].samples.map((s) => s.deviceId)).toEqual(['dev-3']);
      writer.calls[1].commitAll();
      await settle();
      expect(second.ack).toHaveBeenCalledTimes(1);
    });

    it('while a lane is writing, its next batch keeps filling past the flush interval and is written when the write ends', async () => {
      jest.useFakeTimers({ doNotFake: ['setImmediate', 'nextTick', 'queueMicrotask'] });
      const batcher = makeBatcher({ maxBatchSamples: 100, flushIntervalMs: 10 });
      batcher.accept(telemetry('dev-1', { t: 1 }).message);
      jest.advanceTimersByTime(10);
      expect(writer.calls).toHaveLength(1);
      // Three more intervals pass during the write: still one batch filling, not three small ones.
      for (let i = 0; i < 3; i++) {
        batcher.accept(telemetry('dev-3', { t: 2 + i }).message);
        jest.advanceTimersByTime(10);
      }
      expect(writer.calls).toHaveLength(1);
      writer.calls[0].commitAll();
      await settle();
      expect(writer.calls).toHaveLength(2);
      expect(writer.calls[1].samples.map((s) => s.value)).toEqual([2, 3, 4]);
      writer.calls[1].commitAll();
      await settle();
    });

    it('cuts a lane that is writing once its next batch reaches maxBatchSamples', async () => {
      const batcher = makeBatcher({ maxBatchSamples: 2 });
      batcher.accept(telemetry('dev-1', { a: 1, b: 2 }).message);
      expect(writer.calls).toHaveLength(1);
      batcher.accept(telemetry('dev-1', { a: 3, b: 4 }).message);
      batcher.accept(telemetry('dev-3', { a: 5, b: 6 }).message);
      // Two full batches wait behind the write (capacity, not the lane, bounds memory).
      expect(writer.calls).toHaveLength(1);
      writer.calls[0].commitAll();
      await settle();
      expect(writer.calls.map((c) => c.samples.map((s) => s.value))).toEqual([
        [1, 2],
        [3, 4],
      ]);
      writer.calls[1].commitAll();
      await settle();
      expect(writer.calls[2].samples.map((s) => s.value)).toEqual([5, 6]);
      writer.calls[2].commitAll();
      await settle();
    });
  });
});
