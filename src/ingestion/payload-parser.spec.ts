import { parseDeviceIdFromTopic, parseTelemetry } from './payload-parser';
import {
  DEVICE_ID_PATTERN,
  MAX_METRICS_PER_SAMPLE,
  MAX_PAYLOAD_BYTES,
  MAX_SAMPLES_PER_MESSAGE,
  REJECT_REASONS,
  type RejectReason,
} from '../telemetry/telemetry-rules';

// Fixed receive time keeps every range boundary deterministic.
const RECEIVED = Date.UTC(2024, 10, 21, 12, 0, 0); // 2024-11-21T12:00:00Z
const DAY = 24 * 60 * 60 * 1000;
const Y2K = Date.UTC(2000, 0, 1);
const TOPIC = 'devices/dev-1/telemetry';

const encoder = new TextEncoder();
const bytes = (s: string): Uint8Array => encoder.encode(s);
const json = (v: unknown): Uint8Array => bytes(JSON.stringify(v));

/** Pads valid JSON with trailing whitespace to an exact byte size. */
function padded(s: string, size: number): Uint8Array {
  return bytes(s + ' '.repeat(size - Buffer.byteLength(s)));
}

function metricsOf(count: number): Record<string, number> {
  const metrics: Record<string, number> = {};
  for (let i = 0; i < count; i++) metrics[`m${i}`] = i;
  return metrics;
}

function batchOf(count: number): unknown[] {
  const batch: unknown[] = [];
  for (let i = 0; i < count; i++) batch.push({ ts: RECEIVED - i, metrics: { v: i } });
  return batch;
}

function accepted(topic: string, payload: Uint8Array, receivedAt = RECEIVED) {
  const result = parseTelemetry(topic, payload, receivedAt);
  if (!result.ok) throw new Error(`expected ok, got ${result.reason}: ${result.detail}`);
  return result;
}

const valid = (extra: Record<string, unknown> = {}) => ({ ts: RECEIVED, metrics: { temperature: 21.5 }, ...extra });

type MalformedCase = [name: string, topic: string, payload: Uint8Array, reason: RejectReason];

const malformed: MalformedCase[] = [
  // topic
  ['wrong topic prefix', 'device/dev-1/telemetry', json(valid()), 'bad_topic'],
  ['uppercase topic prefix', 'Devices/dev-1/telemetry', json(valid()), 'bad_topic'],
  ['wrong topic suffix', 'devices/dev-1/telemetrie', json(valid()), 'bad_topic'],
  ['extra topic level', 'devices/dev-1/extra/telemetry', json(valid()), 'bad_topic'],
  ['missing topic level', 'devices/telemetry', json(valid()), 'bad_topic'],
  ['leading slash', '/devices/dev-1/telemetry', json(valid()), 'bad_topic'],
  ['trailing slash', 'devices/dev-1/telemetry/', json(valid()), 'bad_topic'],
  ['empty topic', '', json(valid()), 'bad_topic'],
  ['subscription filter as topic', '$share/telemetry-hub/devices/+/telemetry', json(valid()), 'bad_topic'],
  ['empty device id', 'devices//telemetry', json(valid()), 'bad_topic'],
  ['device id of 65 chars', `devices/${'a'.repeat(65)}/telemetry`, json(valid()), 'bad_topic'],
  ["device id with '/'", 'devices/a/b/telemetry', json(valid()), 'bad_topic'],
  ["device id '+'", 'devices/+/telemetry', json(valid()), 'bad_topic'],
  ["device id '#'", 'devices/#/telemetry', json(valid()), 'bad_topic'],
  ['device id with space', 'devices/dev 1/telemetry', json(valid()), 'bad_topic'],
  ['device id with unicode', 'devices/dév-1/telemetry', json(valid()), 'bad_topic'],
  // size
  ['payload of 65537 bytes', TOPIC, padded(JSON.stringify(valid()), MAX_PAYLOAD_BYTES + 1), 'too_large'],
  ['payload of 10 MB', TOPIC, new Uint8Array(10 * 1024 * 1024), 'too_large'],
  // encoding and JSON syntax
  ['invalid UTF-8 byte', TOPIC, Uint8Array.from([...bytes('{"metrics":{"a'), 0xff, ...bytes('":1}}')]), 'invalid_json'],
  ['overlong UTF-8 encoding', TOPIC, Uint8Array.from([...bytes('{"metrics":{"a'), 0xc0, 0xaf, ...bytes('":1}}')]), 'invalid_json'],
  ['UTF-8 encoded surrogate', TOPIC, Uint8Array.from([...bytes('{"metrics":{"a'), 0xed, 0xa0, 0x80, ...bytes('":1}}')]), 'invalid_json'],
  ['truncated multi-byte sequence', TOPIC, Uint8Array.from([...bytes('{"metrics":{"a":1}}'), 0xe2, 0x82]), 'invalid_json'],
  ['leading UTF-8 BOM', TOPIC, Uint8Array.from([0xef, 0xbb, 0xbf, ...json(valid())]), 'invalid_json'],
  ['empty payload', TOPIC, new Uint8Array(0), 'invalid_json'],
  ['whitespace-only payload', TOPIC, bytes('  \n\t '), 'invalid_json'],
  ['not JSON', TOPIC, bytes('temperature=21.5'), 'invalid_json'],
  ['truncated JSON', TOPIC, bytes('{"ts":1732200000000,"metrics":{"temperature":21'), 'invalid_json'],
  ['trailing garbage after JSON', TOPIC, bytes('{"metrics":{"a":1}} x'), 'invalid_json'],
  ['single-quoted JSON5', TOPIC, bytes("{'metrics':{'a':1}}"), 'invalid_json'],
  ['trailing comma', TOPIC, bytes('{"metrics":{"a":1,}}'), 'invalid_json'],
  ['NaN literal', TOPIC, bytes('{"metrics":{"a":NaN}}'), 'invalid_json'],
  // top-level shape
  ['JSON string top level', TOPIC, bytes('"hello"'), 'invalid_shape'],
  ['JSON number top level', TOPIC, bytes('21.5'), 'invalid_shape'],
  ['JSON null top level', TOPIC, bytes('null'), 'invalid_shape'],
  ['JSON true top level', TOPIC, bytes('true'), 'invalid_shape'],
  ['empty array', TOPIC, bytes('[]'), 'invalid_shape'],
  ['1001 samples', TOPIC, json(batchOf(MAX_SAMPLES_PER_MESSAGE + 1)), 'too_many_samples'],
  ['array containing a number', TOPIC, json([valid(), 42]), 'invalid_shape'],
  ['array containing null', TOPIC, json([valid(), null]), 'invalid_shape'],
  ['sample is an array', TOPIC, json([[valid()]]), 'invalid_shape'],
  // sample shape
  ['sample missing metrics', TOPIC, json({ ts: RECEIVED }), 'invalid_shape'],
  ['metrics null', TOPIC, json({ metrics: null }), 'invalid_shape'],
  ['metrics array', TOPIC, json({ metrics: [21.5] }), 'invalid_shape'],
  ['metrics string', TOPIC, json({ metrics: 'temperature' }), 'invalid_shape'],
  ['metrics number', TOPIC, json({ metrics: 21.5 }), 'invalid_shape'],
  ['metrics empty object', TOPIC, json({ metrics: {} }), 'invalid_shape'],
  ['101 metrics', TOPIC, json({ metrics: metricsOf(MAX_METRICS_PER_SAMPLE + 1) }), 'invalid_shape'],
  ['unknown extra key', TOPIC, json(valid({ unit: 'C' })), 'invalid_shape'],
  ['differently cased key', TOPIC, bytes('{"Metrics":{"a":1}}'), 'invalid_shape'],
  ['__proto__ key on sample', TOPIC, bytes('{"__proto__":{"ts":1},"metrics":{"a":1}}'), 'invalid_shape'],
  // metric names
  ['metric name empty', TOPIC, json({ metrics: { '': 1 } }), 'invalid_metric'],
  ['metric name of 65 chars', TOPIC, json({ metrics: { ['m'.repeat(65)]: 1 } }), 'invalid_metric'],
  ['metric name with space', TOPIC, json({ metrics: { 'air temp': 1 } }), 'invalid_metric'],
  ["metric name with '/'", TOPIC, json({ metrics: { 'a/b': 1 } }), 'invalid_metric'],
  ["metric name with ':'", TOPIC, json({ metrics: { 'a:b': 1 } }), 'invalid_metric'],
  ['metric name with unicode', TOPIC, json({ metrics: { température: 1 } }), 'invalid_metric'],
  ['metric name __proto__', TOPIC, bytes('{"metrics":{"__proto__":1}}'), 'invalid_metric'],
  // metric values
  ['value string', TOPIC, json({ metrics: { temperature: '21.5' } }), 'invalid_value'],
  ['value null', TOPIC, json({ metrics: { temperature: null } }), 'invalid_value'],
  ['value object', TOPIC, json({ metrics: { temperature: { v: 21.5 } } }), 'invalid_value'],
  ['value array', TOPIC, json({ metrics: { temperature: [21.5] } }), 'invalid_value'],
  ['value 1e400 (Infinity)', TOPIC, bytes('{"metrics":{"temperature":1e400}}'), 'invalid_value'],
  ['value -1e400 (-Infinity)', TOPIC, bytes('{"metrics":{"temperature":-1e400}}'), 'invalid_value'],
  // timestamps
  ['ts null', TOPIC, json(valid({ ts: null })), 'invalid_timestamp'],
  ['ts boolean', TOPIC, json(valid({ ts: true })), 'invalid_timestamp'],
  ['ts object', TOPIC, json(valid({ ts: { ms: RECEIVED } })), 'invalid_timestamp'],
  ['ts array', TOPIC, json(valid({ ts: [RECEIVED] })), 'invalid_timestamp'],
  ['ts negative', TOPIC, json(valid({ ts: -1 })), 'invalid_timestamp'],
  ['ts non-integer ms', TOPIC, json(valid({ ts: RECEIVED + 0.5 })), 'invalid_timestamp'],
  ['ts 1 ms before 2000', TOPIC, json(valid({ ts: Y2K - 1 })), 'invalid_timestamp'],
  ['ts in seconds instead of ms', TOPIC, json(valid({ ts: Math.floor(RECEIVED / 1000) })), 'invalid_timestamp'],
  ['ts 1 ms more than 1 day ahead', TOPIC, json(valid({ ts: RECEIVED + DAY + 1 })), 'invalid_timestamp'],
  ['ts huge number', TOPIC, bytes('{"ts":1e300,"metrics":{"a":1}}'), 'invalid_timestamp'],
  ['ts unparseable string', TOPIC, json(valid({ ts: 'yesterday' })), 'invalid_timestamp'],
  ['ts empty string', TOPIC, json(valid({ ts: '' })), 'invalid_timestamp'],
  ['ts RFC 2822 string', TOPIC, json(valid({ ts: 'Thu, 21 Nov 2024 12:00:00 GMT' })), 'invalid_timestamp'],
  ['ts numeric string', TOPIC, json(valid({ ts: String(RECEIVED) })), 'invalid_timestamp'],
  ['ts ISO without zone', TOPIC, json(valid({ ts: '2024-11-21T12:00:00' })), 'invalid_timestamp'],
  ['ts ISO with space separator', TOPIC, json(valid({ ts: '2024-11-21 12:00:00Z' })), 'invalid_timestamp'],
  ['ts ISO with lowercase z', TOPIC, json(valid({ ts: '2024-11-21T12:00:00z' })), 'invalid_timestamp'],
  ['ts ISO basic-format offset', TOPIC, json(valid({ ts: '2024-11-21T12:00:00+0200' })), 'invalid_timestamp'],
  ['ts ISO week date', TOPIC, json(valid({ ts: '2024-W47-4' })), 'invalid_timestamp'],
  ['ts invalid calendar date', TOPIC, json(valid({ ts: '2024-02-30T00:00:00Z' })), 'invalid_timestamp'],
  ['ts Feb 29 in a non-leap year', TOPIC, json(valid({ ts: '2023-02-29' })), 'invalid_timestamp'],
  ['ts month 13', TOPIC, json(valid({ ts: '2024-13-01T00:00:00Z' })), 'invalid_timestamp'],
  ['ts hour 24', TOPIC, json(valid({ ts: '2024-01-01T24:00:00Z' })), 'invalid_timestamp'],
  ['ts offset hour 24', TOPIC, json(valid({ ts: '2024-01-01T00:00:00+24:00' })), 'invalid_timestamp'],
  ['ts ISO before 2000', TOPIC, json(valid({ ts: '1999-12-31T23:59:59.999Z' })), 'invalid_timestamp'],
  ['ts ISO more than 1 day ahead', TOPIC, json(valid({ ts: '2024-11-22T12:00:00.001Z' })), 'invalid_timestamp'],
  // one bad sample poisons the whole batch
  ['batch with one bad value', TOPIC, json([valid(), { metrics: { a: 'x' } }, valid()]), 'invalid_value'],
  ['batch with one bad ts', TOPIC, json([valid(), valid(), valid({ ts: 'soon' })]), 'invalid_timestamp'],
  ['batch of 1000 with last metric name bad', TOPIC, json([...batchOf(999), { metrics: { 'bad name': 1 } }]), 'invalid_metric'],
];

describe('parseTelemetry rejects malformed messages', () => {
  it('covers at least 40 distinct classes', () => {
    expect(new Set(malformed.map(([name]) => name)).size).toBe(malformed.length);
    expect(malformed.length).toBeGreaterThanOrEqual(40);
  });

  it.each(malformed)('%s', (_name, topic, payload, reason) => {
    const result = parseTelemetry(topic, payload, RECEIVED);
    expect(result).toEqual({ ok: false, reason, detail: expect.any(String) });
    if (!result.ok) expect(result.detail.length).toBeGreaterThan(0);
  });

  it('checks the topic before the size', () => {
    const result = parseTelemetry('nope', new Uint8Array(MAX_PAYLOAD_BYTES + 1), RECEIVED);
    expect(result).toMatchObject({ ok: false, reason: 'bad_topic' });
  });

  it('names the failing sample and metric in the detail', () => {
    const result = parseTelemetry(TOPIC, json([valid(), { metrics: { temperature: '21.5' } }]), RECEIVED);
    expect(result).toMatchObject({ ok: false, detail: '[1].metrics.temperature: value must be a finite number or boolean' });
    const single = parseTelemetry(TOPIC, bytes('{"metrics":{"temperature":1e400}}'), RECEIVED);
    expect(single).toMatchObject({ ok: false, detail: 'metrics.temperature: value must be a finite number' });
  });

  it('never echoes more than ~64 characters of user input', () => {
    const longName = 'x'.repeat(5000) + ' ';
    const longKey = 'k'.repeat(5000);
    for (const payload of [json({ metrics: { [longName]: 1 } }), json({ [longKey]: 1, metrics: { a: 1 } })]) {
      const result = parseTelemetry(TOPIC, payload, RECEIVED);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.detail.length).toBeLessThan(160);
    }
  });
});

describe('parseTelemetry accepts valid messages', () => {
  it('turns one sample object into one Sample per metric, in key order', () => {
    const result = accepted(TOPIC, bytes('{"ts": 1732200000000, "metrics": {"temperature": 21.5, "humidity": 40.2}}'));
    expect(result).toEqual({
      ok: true,
      deviceId: 'dev-1',
      samples: [
        { deviceId: 'dev-1', metric: 'temperature', ts: 1732200000000, value: 21.5 },
        { deviceId: 'dev-1', metric: 'humidity', ts: 1732200000000, value: 40.2 },
      ],
    });
  });

  it('keeps message order, then metric order, in a batch', () => {
    const result = accepted(
      TOPIC,
      json([
        { ts: RECEIVED - 2000, metrics: { a: 1, b: 2 } },
        { ts: RECEIVED - 1000, metrics: { c: 3 } },
      ]),
    );
    expect(result.samples.map((s) => [s.metric, s.ts, s.value])).toEqual([
      ['a', RECEIVED - 2000, 1],
      ['b', RECEIVED - 2000, 2],
      ['c', RECEIVED - 1000, 3],
    ]);
  });

  it('uses the receive time when ts is absent', () => {
    const result = accepted(TOPIC, json({ metrics: { a: 1, b: 2 } }));
    expect(result.samples.map((s) => s.ts)).toEqual([RECEIVED, RECEIVED]);
  });

  it('falls back to the clock when the receive time itself is not finite', () => {
    const before = Date.now();
    const result = accepted(TOPIC, json({ metrics: { a: 1 } }), Number.NaN);
    expect(result.samples[0].ts).toBeGreaterThanOrEqual(before);
    expect(result.samples[0].ts).toBeLessThanOrEqual(Date.now());
  });

  it.each([
    ['Z', '2024-11-21T10:30:00Z', Date.UTC(2024, 10, 21, 10, 30, 0)],
    ['+02:00 offset', '2024-11-21T10:30:00+02:00', Date.UTC(2024, 10, 21, 8, 30, 0)],
    ['-05:30 offset', '2024-11-21T01:00:00-05:30', Date.UTC(2024, 10, 21, 6, 30, 0)],
    ['-00:00 offset', '2024-11-21T10:30:00-00:00', Date.UTC(2024, 10, 21, 10, 30, 0)],
    ['milliseconds', '2024-11-21T10:30:00.123Z', Date.UTC(2024, 10, 21, 10, 30, 0, 123)],
    ['one fractional digit', '2024-11-21T10:30:00.5Z', Date.UTC(2024, 10, 21, 10, 30, 0, 500)],
    ['nanoseconds, truncated to ms', '2024-11-21T10:30:00.987654321Z', Date.UTC(2024, 10, 21, 10, 30, 0, 987)],
    ['minute precision', '2024-11-21T10:30Z', Date.UTC(2024, 10, 21, 10, 30)],
    ['date only, UTC midnight', '2024-11-21', Date.UTC(2024, 10, 21)],
    ['leap day', '2024-02-29T12:00:00Z', Date.UTC(2024, 1, 29, 12)],
    ['exactly 2000-01-01', '2000-01-01T00:00:00Z', Y2K],
    ['2000-01-01 via offset', '2000-01-01T02:00:00+02:00', Y2K],
    ['exactly receivedAt + 1 day', '2024-11-22T12:00:00Z', RECEIVED + DAY],
  ])('accepts ISO-8601 ts with %s', (_name, ts, expected) => {
    const result = accepted(TOPIC, json({ ts, metrics: { a: 1 } }));
    expect(result.samples[0].ts).toBe(expected);
  });

  it.each([
    ['exactly 2000-01-01', Y2K],
    ['exactly receivedAt + 1 day', RECEIVED + DAY],
  ])('accepts numeric ts %s', (_name, ts) => {
    expect(accepted(TOPIC, json({ ts, metrics: { a: 1 } })).samples[0].ts).toBe(ts);
  });

  it('accepts an integral ts in float or exponent notation', () => {
    expect(accepted(TOPIC, bytes('{"ts":1.7322e12,"metrics":{"a":1}}')).samples[0].ts).toBe(1.7322e12);
    expect(accepted(TOPIC, bytes('{"ts":1732200000000.0,"metrics":{"a":1}}')).samples[0].ts).toBe(1732200000000);
  });

  it('stores booleans as 1/0 and keeps other finite numbers as they are', () => {
    const result = accepted(TOPIC, json({ metrics: { on: true, off: false, neg: -3.25, zero: 0, big: 1.7e308 } }));
    expect(Object.fromEntries(result.samples.map((s) => [s.metric, s.value]))).toEqual({
      on: 1,
      off: 0,
      neg: -3.25,
      zero: 0,
      big: 1.7e308,
    });
  });

  it('accepts exactly 1000 samples', () => {
    expect(accepted(TOPIC, json(batchOf(MAX_SAMPLES_PER_MESSAGE))).samples).toHaveLength(1000);
  });

  it('accepts exactly 100 metrics', () => {
    const result = accepted(TOPIC, json({ metrics: metricsOf(MAX_METRICS_PER_SAMPLE) }));
    expect(result.samples).toHaveLength(100);
    expect(result.samples[99]).toEqual({ deviceId: 'dev-1', metric: 'm99', ts: RECEIVED, value: 99 });
  });

  it('accepts a payload of exactly 64 KiB', () => {
    const payload = padded(JSON.stringify(valid()), MAX_PAYLOAD_BYTES);
    expect(payload.byteLength).toBe(65536);
    expect(accepted(TOPIC, payload).samples).toHaveLength(1);
  });

  it('validates metric names after JSON \\u escapes are decoded', () => {
    expect(accepted(TOPIC, bytes('{"metrics":{"\\u0074emp":1}}')).samples[0].metric).toBe('temp');
  });

  it.each([
    ['all allowed punctuation', 'a_b.c:d-e'],
    ['64 characters', 'd'.repeat(64)],
    ['single character', 'x'],
    ['uppercase and digits', 'ESP32-ABC123'],
  ])('accepts a device id with %s', (_name, id) => {
    const result = accepted(`devices/${id}/telemetry`, json(valid()));
    expect(result.deviceId).toBe(id);
    expect(result.samples[0].deviceId).toBe(id);
  });

  it('treats Object.prototype names as ordinary metrics without polluting anything', () => {
    const result = accepted(TOPIC, bytes('{"metrics":{"constructor":1,"toString":2,"hasOwnProperty":3,"prototype":4}}'));
    expect(result.samples.map((s) => [s.metric, s.value])).toEqual([
      ['constructor', 1],
      ['toString', 2],
      ['hasOwnProperty', 3],
      ['prototype', 4],
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    parseTelemetry(TOPIC, bytes('{"metrics":{"__proto__":{"polluted":1}}}'), RECEIVED);
    parseTelemetry(TOPIC, bytes('{"__proto__":{"polluted":1},"metrics":{"a":1}}'), RECEIVED);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reads Buffers and offset views without looking outside them', () => {
    const whole = Buffer.from(`garbage${JSON.stringify(valid())}garbage`);
    const view = whole.subarray(7, whole.length - 7);
    expect(accepted(TOPIC, view).samples).toHaveLength(1);
  });

  it('lets the last duplicate key win, as JSON.parse does', () => {
    expect(accepted(TOPIC, bytes('{"metrics":{"a":1,"a":2}}')).samples).toEqual([{ deviceId: 'dev-1', metric: 'a', ts: RECEIVED, value: 2 }]);
  });
});

describe('parseDeviceIdFromTopic', () => {
  it.each([
    ['devices/x/telemetry', 'x'],
    ['devices/dev-1/telemetry', 'dev-1'],
    ['devices/a_b.c:d-e/telemetry', 'a_b.c:d-e'],
    [`devices/${'z'.repeat(64)}/telemetry`, 'z'.repeat(64)],
    ['devices//telemetry', null],
    [`devices/${'z'.repeat(65)}/telemetry`, null],
    ['devices/a/b/telemetry', null],
    ['devices/x/telemetry/extra', null],
    ['devices/x', null],
    ['devices/telemetry', null],
    ['x/telemetry', null],
    ['devices/+/telemetry', null],
    ['devices/#', null],
    ['', null],
    ['devices/x/Telemetry', null],
  ])('%j -> %j', (topic, expected) => {
    expect(parseDeviceIdFromTopic(topic)).toBe(expected);
  });

  it('exposes the device id pattern', () => {
    expect(DEVICE_ID_PATTERN.source).toBe('^[A-Za-z0-9_.:-]{1,64}$');
  });
});

describe('parseTelemetry never throws', () => {
  // mulberry32: tiny seeded PRNG so every run checks the same inputs.
  function prng(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  function expectWellFormed(result: ReturnType<typeof parseTelemetry>): void {
    if (result.ok) {
      for (const s of result.samples) {
        expect(Number.isFinite(s.value)).toBe(true);
        expect(Number.isInteger(s.ts)).toBe(true);
      }
    } else {
      expect(REJECT_REASONS).toContain(result.reason);
      expect(typeof result.detail).toBe('string');
    }
  }

  it('survives random byte buffers', () => {
    const rand = prng(0xc0ffee);
    for (let i = 0; i < 300; i++) {
      const buf = new Uint8Array(Math.floor(rand() * 200));
      for (let j = 0; j < buf.length; j++) buf[j] = Math.floor(rand() * 256);
      expectWellFormed(parseTelemetry(TOPIC, buf, RECEIVED));
    }
  });

  it('survives random JSON-ish strings', () => {
    const rand = prng(42);
    const tokens = [
      '{',
      '}',
      '[',
      ']',
      ',',
      ':',
      '"ts"',
      '"metrics"',
      '"a"',
      '"__proto__"',
      '"constructor"',
      '1',
      '-1',
      '1e400',
      '0.5',
      'true',
      'false',
      'null',
      '"2024-11-21T12:00:00Z"',
      '"2024-02-30"',
      `${RECEIVED}`,
      '""',
      ' ',
      '\\',
      '"',
    ];
    for (let i = 0; i < 400; i++) {
      let s = '';
      const n = 1 + Math.floor(rand() * 30);
      for (let j = 0; j < n; j++) s += tokens[Math.floor(rand() * tokens.length)];
      expectWellFormed(parseTelemetry(TOPIC, bytes(s), RECEIVED));
    }
  });

  it('survives single-byte mutations of a valid payload', () => {
    const rand = prng(7);
    const base = json([valid(), { ts: '2024-11-21T10:00:00+02:00', metrics: { on: true, h: 40.2 } }]);
    for (let i = 0; i < 300; i++) {
      const buf = Uint8Array.from(base);
      buf[Math.floor(rand() * buf.length)] = Math.floor(rand() * 256);
      expectWellFormed(parseTelemetry(TOPIC, buf, RECEIVED));
    }
  });

  it('survives arguments of the wrong runtime type', () => {
    const odd: unknown[] = [undefined, null, 42, 'string', {}, [], new ArrayBuffer(4), new DataView(new ArrayBuffer(2))];
    for (const value of odd) {
      expectWellFormed(parseTelemetry(value as string, json(valid()), RECEIVED));
      expectWellFormed(parseTelemetry(TOPIC, value as Uint8Array, RECEIVED));
      expectWellFormed(parseTelemetry(TOPIC, json(valid()), value as number));
      expect(parseDeviceIdFromTopic(value as string)).toBeNull();
    }
  });
});
