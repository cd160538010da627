// The simulator's signals: deterministic, plausible, shaped like the real
// thing (daily cycle, slow battery drain, gaps), and every payload it builds
// is judged by the service's own parser exactly as intended.
import { parseTelemetry } from '../ingestion/payload-parser';
import { BAD_PAYLOAD_KINDS, badPayload, createRng, dailyCycle, DeviceSignal, encodeReading, type Reading } from './device-signals';

const T0 = Date.UTC(2026, 10, 21, 0, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** Readings every `stepMs` for `spanMs`, gaps included as null. */
function run(signal: DeviceSignal, spanMs: number, stepMs: number, from = T0): Array<{ ts: number; reading: Reading | null }> {
  const out = [];
  for (let ts = from; ts < from + spanMs; ts += stepMs) out.push({ ts, reading: signal.next(ts) });
  return out;
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

describe('createRng', () => {
  it('is deterministic per seed and stays in [0, 1)', () => {
    const a = createRng(42);
    const b = createRng(42);
    const values = Array.from({ length: 1000 }, () => a());
    expect(values).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(values.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(createRng(43)()).not.toBe(values[0]);
  });
});

describe('DeviceSignal', () => {
  it('gives the same readings for the same device id and seed, different ones otherwise', () => {
    const a = run(new DeviceSignal('sim-001', 7), HOUR, 10_000);
    const b = run(new DeviceSignal('sim-001', 7), HOUR, 10_000);
    expect(a).toEqual(b);
    expect(run(new DeviceSignal('sim-002', 7), HOUR, 10_000)).not.toEqual(a);
    expect(run(new DeviceSignal('sim-001', 8), HOUR, 10_000)).not.toEqual(a);
  });

  it('stays within physical ranges over two simulated days, for many devices', () => {
    for (let i = 0; i < 20; i++) {
      const readings = run(new DeviceSignal(`dev-${i}`, 1), 48 * HOUR, MINUTE)
        .map((r) => r.reading)
        .filter((r): r is Reading => r !== null);
      expect(readings.length).toBeGreaterThan(2500);
      const range = (key: keyof Reading) => {
        const values = readings.map((r) => r[key]);
        return [Math.min(...values), Math.max(...values)];
      };
      const [tMin, tMax] = range('temperature');
      expect(tMin).toBeGreaterThan(5);
      expect(tMax).toBeLessThan(35);
      const [hMin, hMax] = range('humidity');
      expect(hMin).toBeGreaterThanOrEqual(5);
      expect(hMax).toBeLessThanOrEqual(99);
      const [pMin, pMax] = range('pressure');
      expect(pMin).toBeGreaterThan(980);
      expect(pMax).toBeLessThan(1045);
      const [bMin, bMax] = range('battery');
      expect(bMin).toBeGreaterThanOrEqual(0);
      expect(bMax).toBeLessThanOrEqual(100);
    }
  });

  it('follows a daily cycle: afternoons are warmer than nights, humidity the other way round', () => {
    const signal = new DeviceSignal('sim-001', 3, { gapProbability: 0 });
    const offset = signal.profile.utcOffsetHours;
    const readings = run(signal, 4 * 24 * HOUR, 5 * MINUTE);
    const localHour = (ts: number) => (((ts / HOUR + offset) % 24) + 24) % 24;
    const afternoon = readings.filter((r) => localHour(r.ts) >= 13 && localHour(r.ts) < 17).map((r) => r.reading!);
    const night = readings.filter((r) => localHour(r.ts) >= 1 && localHour(r.ts) < 5).map((r) => r.reading!);
    const swing = mean(afternoon.map((r) => r.temperature)) - mean(night.map((r) => r.temperature));
    expect(swing).toBeGreaterThan(signal.profile.dailyAmplitude);
    expect(mean(afternoon.map((r) => r.humidity))).toBeLessThan(mean(night.map((r) => r.humidity)));
  });

  it('peaks the daily cycle at 15:00 device-local time', () => {
    expect(dailyCycle(T0 + 15 * HOUR, 0)).toBeCloseTo(1, 6);
    expect(dailyCycle(T0 + 3 * HOUR, 0)).toBeCloseTo(-1, 6);
    expect(dailyCycle(T0 + 13 * HOUR, 2)).toBeCloseTo(1, 6);
  });

  it('is smooth from one reading to the next (noise, not jumps)', () => {
    const readings = run(new DeviceSignal('sim-005', 1, { gapProbability: 0 }), HOUR, 2000).map((r) => r.reading!);
    for (let i = 1; i < readings.length; i++) {
      expect(Math.abs(readings[i].temperature - readings[i - 1].temperature)).toBeLessThan(0.5);
      expect(Math.abs(readings[i].pressure - readings[i - 1].pressure)).toBeLessThan(0.5);
    }
  });

  it('discharges the battery slowly, and a nearly empty one is replaced by a full one', () => {
    const signal = new DeviceSignal('sim-009', 1, { gapProbability: 0 });
    const readings = run(signal, 10 * 24 * HOUR, 10 * MINUTE).map((r) => r.reading!);
    let swaps = 0;
    for (let i = 1; i < readings.length; i++) {
      const delta = readings[i].battery - readings[i - 1].battery;
      if (delta > 50) swaps++;
      else expect(delta).toBeLessThanOrEqual(0);
    }
    // 0.3–1.5 % per hour: one hour costs little, ten days empty it at least once.
    const perHour = signal.profile.dischargePerHour;
    expect(perHour).toBeGreaterThanOrEqual(0.3);
    expect(perHour).toBeLessThanOrEqual(1.5);
    expect(readings[0].battery - readings[6].battery).toBeCloseTo(perHour, 1);
    expect(swaps).toBeGreaterThanOrEqual(1);
  });

  it('goes silent now and then, for a stretch of consecutive readings', () => {
    const signal = new DeviceSignal('sim-010', 1, { gapProbability: 0.01, gapLength: [5, 10] });
    const readings = run(signal, 24 * HOUR, 10_000).map((r) => r.reading);
    const runs: number[] = [];
    let current = 0;
    for (const r of readings) {
      if (r === null) current++;
      else if (current > 0) {
        runs.push(current);
        current = 0;
      }
    }
    expect(runs.length).toBeGreaterThan(20);
    expect(runs.every((n) => n >= 5 && n <= 10 * 2)).toBe(true); // back-to-back gaps may merge
    const silent = readings.filter((r) => r === null).length / readings.length;
    expect(silent).toBeGreaterThan(0.03);
    expect(silent).toBeLessThan(0.15);
  });

  it('has no gaps when the gap probability is 0', () => {
    expect(run(new DeviceSignal('sim-011', 1, { gapProbability: 0 }), HOUR, 1000).every((r) => r.reading !== null)).toBe(true);
  });
});

describe('payloads', () => {
  const topic = 'devices/sim-001/telemetry';
  const now = T0 + HOUR;

  it('a reading encodes to one valid sample with four metrics at its timestamp', () => {
    const reading = new DeviceSignal('sim-001').next(now)!;
    const result = parseTelemetry(topic, Buffer.from(encodeReading(now, reading)), now);
    expect(result).toEqual({
      ok: true,
      deviceId: 'sim-001',
      samples: expect.arrayContaining([
        { deviceId: 'sim-001', metric: 'temperature', ts: now, value: reading.temperature },
        { deviceId: 'sim-001', metric: 'battery', ts: now, value: reading.battery },
      ]),
    });
    if (result.ok) expect(result.samples).toHaveLength(4);
  });

  it.each(BAD_PAYLOAD_KINDS)('a deliberately bad payload (%s) is rejected for exactly that reason', (kind) => {
    const result = parseTelemetry(topic, Buffer.from(badPayload(kind, now)), now);
    expect(result).toMatchObject({ ok: false, reason: kind });
  });
});
