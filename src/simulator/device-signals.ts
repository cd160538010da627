// Realistic sensor signals for the simulator (`npm run simulate`). Pure and
// deterministic: a device's readings depend only on its id, the seed and the
// timestamps asked for, so the spec can check their shape without I/O.
//
// Per device:
// - temperature: a daily sine (warmest around 15:00 device-local time) plus a
//   slow mean-reverting drift plus sensor noise;
// - humidity: moves against temperature, with its own drift and noise;
// - pressure: a slow weather-like wander around the device's sea-level value;
// - battery: discharges slowly and is swapped for a full one near empty;
// - occasional gaps: now and then the device goes silent for a while (the
//   simulator then skips its reports).

/** One reading; metric names match the contract's `^[A-Za-z0-9_.-]{1,64}$`. */
export interface Reading {
  temperature: number;
  humidity: number;
  pressure: number;
  battery: number;
}

export interface DeviceProfile {
  /** Mean temperature, °C. */
  baseTemperature: number;
  /** Half the day/night swing, °C. */
  dailyAmplitude: number;
  /** Device-local time minus UTC, hours (shifts the daily sine). */
  utcOffsetHours: number;
  /** Mean relative humidity, %. */
  baseHumidity: number;
  /** Mean pressure, hPa. */
  basePressure: number;
  /** Battery level at the first reading, %. */
  initialBattery: number;
  /** Battery discharge, % per hour. */
  dischargePerHour: number;
}

export interface SignalOptions {
  /** Chance per reading that a gap starts (default 0.001). */
  gapProbability?: number;
  /** Gap length in readings, inclusive range (default 3..20). */
  gapLength?: [number, number];
}

/** Small, fast, seedable PRNG (mulberry32) returning numbers in [0, 1). */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** FNV-1a hash of a string, mixed with a seed: a stable per-device seed. */
export function hashSeed(text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

function gaussian(rng: () => number): number {
  // Box–Muller; 1 - rng() avoids log(0).
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

const between = (rng: () => number, min: number, max: number) => min + (max - min) * rng();
const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;
const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));

export function randomProfile(rng: () => number): DeviceProfile {
  return {
    baseTemperature: between(rng, 17, 25),
    dailyAmplitude: between(rng, 1.5, 4.5),
    utcOffsetHours: Math.round(between(rng, -3, 3)),
    baseHumidity: between(rng, 35, 60),
    basePressure: between(rng, 1005, 1022),
    initialBattery: between(rng, 40, 100),
    dischargePerHour: between(rng, 0.3, 1.5),
  };
}

/**
 * Ornstein–Uhlenbeck step: mean-reverting random walk towards 0, `theta` per
 * hour, stationary standard deviation `sd`. `dtHours` may be 0.
 */
function ouStep(value: number, dtHours: number, theta: number, sd: number, rng: () => number): number {
  if (dtHours <= 0) return value;
  const decay = Math.exp(-theta * dtHours);
  return value * decay + sd * Math.sqrt(1 - decay * decay) * gaussian(rng);
}

const HOUR_MS = 3_600_000;

/** Daily sine in [-1, 1], peaking at 15:00 device-local time. */
export function dailyCycle(tsMs: number, utcOffsetHours: number): number {
  const hourOfDay = (((tsMs / HOUR_MS + utcOffsetHours) % 24) + 24) % 24;
  return Math.sin((2 * Math.PI * (hourOfDay - 9)) / 24);
}

export class DeviceSignal {
  readonly profile: DeviceProfile;
  private readonly rng: () => number;
  private readonly gapProbability: number;
  private readonly gapLength: [number, number];
  private temperatureDrift = 0;
  private humidityDrift = 0;
  private pressureDrift = 0;
  private battery: number;
  private lastTs: number | undefined;
  private gapRemaining = 0;

  constructor(
    readonly deviceId: string,
    seed = 0,
    options: SignalOptions = {},
  ) {
    this.rng = createRng(hashSeed(deviceId, seed));
    this.profile = randomProfile(this.rng);
    this.battery = this.profile.initialBattery;
    this.gapProbability = options.gapProbability ?? 0.001;
    this.gapLength = options.gapLength ?? [3, 20];
  }

  /** True while the device is silent. */
  get inGap(): boolean {
    return this.gapRemaining > 0;
  }

  /**
   * The device's reading at `tsMs` (call with non-decreasing times), or null
   * when the device is in a gap and sends nothing.
   */
  next(tsMs: number): Reading | null {
    const dtHours = this.lastTs === undefined ? 0 : Math.max(0, tsMs - this.lastTs) / HOUR_MS;
    this.lastTs = tsMs;
    const rng = this.rng;
    // The physical state evolves during a gap too; only the report is missing.
    this.temperatureDrift = ouStep(this.temperatureDrift, dtHours, 0.5, 0.8, rng);
    this.humidityDrift = ouStep(this.humidityDrift, dtHours, 0.5, 3, rng);
    this.pressureDrift = ouStep(this.pressureDrift, dtHours, 0.1, 4, rng);
    this.battery -= this.profile.dischargePerHour * dtHours;
    if (this.battery < 5) this.battery = 100; // someone swapped the battery

    if (this.gapRemaining > 0) {
      this.gapRemaining--;
      return null;
    }
    if (rng() < this.gapProbability) {
      const [min, max] = this.gapLength;
      this.gapRemaining = Math.floor(between(rng, min, max + 1)) - 1;
      return null;
    }

    const p = this.profile;
    const daily = p.dailyAmplitude * dailyCycle(tsMs, p.utcOffsetHours);
    const temperature = p.baseTemperature + daily + this.temperatureDrift + 0.02 * gaussian(rng);
    const humidity = p.baseHumidity - 2.2 * (daily + this.temperatureDrift) + this.humidityDrift + 0.1 * gaussian(rng);
    const pressure = p.basePressure + this.pressureDrift + 0.01 * gaussian(rng);
    return {
      temperature: round(temperature, 2),
      humidity: round(clamp(humidity, 5, 99), 2),
      pressure: round(clamp(pressure, 950, 1060), 2),
      battery: round(this.battery, 2),
    };
  }
}

/** Metric values (samples, as the service counts them) in every reading. */
export const METRICS_PER_READING = 4;

/** The MQTT payload of one reading: one timestamp, METRICS_PER_READING samples. */
export function encodeReading(tsMs: number, reading: Reading): string {
  return JSON.stringify({ ts: tsMs, metrics: reading });
}

export const BAD_PAYLOAD_KINDS = ['invalid_json', 'invalid_value', 'invalid_metric', 'invalid_timestamp', 'invalid_shape'] as const;
export type BadPayloadKind = (typeof BAD_PAYLOAD_KINDS)[number];

/**
 * A malformed message of the given kind, as a buggy device would send it; the
 * service must reject it (counted under the same reason) and keep going.
 */
export function badPayload(kind: BadPayloadKind, tsMs: number): string {
  switch (kind) {
    case 'invalid_json':
      return `{"ts": ${tsMs}, "metrics": {"temperature": 21.`;
    case 'invalid_value':
      return JSON.stringify({ ts: tsMs, metrics: { temperature: 'warm' } });
    case 'invalid_metric':
      return JSON.stringify({ ts: tsMs, metrics: { 'temp °C': 21.5 } });
    case 'invalid_timestamp':
      return JSON.stringify({ ts: '1999-12-31T23:59:59Z', metrics: { temperature: 21.5 } });
    case 'invalid_shape':
      return JSON.stringify({ ts: tsMs, values: { temperature: 21.5 } });
  }
}
