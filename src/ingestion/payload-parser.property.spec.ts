// Property-based checks of the payload parser (fast-check): it never throws,
// never accepts an invalid sample, and accepts every valid message exactly.
import fc from 'fast-check';
import { parseTelemetry } from './payload-parser';
import { DEVICE_ID_PATTERN } from '../telemetry/telemetry-rules';

const NOW = Date.UTC(2026, 10, 21, 12, 0, 0);
const MIN_TS = Date.UTC(2000, 0, 1);
const MAX_TS = NOW + 24 * 3600 * 1000;
const METRIC = /^[A-Za-z0-9_.-]{1,64}$/;
const enc = new TextEncoder();

const idChars = fc.constantFrom(...'abcXYZ019_.:-'.split(''));
const deviceId = fc.string({ unit: idChars, minLength: 1, maxLength: 64 });
const metricName = fc.string({ unit: fc.constantFrom(...'abtXZ09_.-'.split('')), minLength: 1, maxLength: 64 }).filter((n) => n !== '__proto__');
const value = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.boolean());
const sample = fc.record(
  {
    ts: fc.oneof(
      fc.integer({ min: MIN_TS, max: MAX_TS }),
      fc.integer({ min: MIN_TS, max: MAX_TS }).map((t) => new Date(t).toISOString()),
    ),
    metrics: fc.dictionary(metricName, value, { minKeys: 1, maxKeys: 20 }),
  },
  { requiredKeys: ['metrics'] },
);
const message = fc.oneof(sample, fc.array(sample, { minLength: 1, maxLength: 20 }));

function assertValidResult(topic: string, bytes: Uint8Array): void {
  const result = parseTelemetry(topic, bytes, NOW);
  if (!result.ok) return;
  expect(DEVICE_ID_PATTERN.test(result.deviceId)).toBe(true);
  expect(topic).toBe(`devices/${result.deviceId}/telemetry`);
  expect(result.samples.length).toBeGreaterThan(0);
  for (const s of result.samples) {
    expect(s.deviceId).toBe(result.deviceId);
    expect(METRIC.test(s.metric)).toBe(true);
    expect(Number.isFinite(s.value)).toBe(true);
    expect(s.ts).toBeGreaterThanOrEqual(MIN_TS);
    expect(s.ts).toBeLessThanOrEqual(MAX_TS);
  }
}

describe('parseTelemetry properties', () => {
  it('never throws and never accepts an invalid sample, for arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.string(), fc.uint8Array({ maxLength: 300 }), (topic, bytes) => {
        assertValidResult(topic, bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws and never accepts an invalid sample, for arbitrary JSON on a valid topic', () => {
    fc.assert(
      fc.property(deviceId, fc.jsonValue(), (id, json) => {
        assertValidResult(`devices/${id}/telemetry`, enc.encode(JSON.stringify(json) ?? ''));
      }),
      { numRuns: 2000 },
    );
  });

  it('accepts every valid message and returns exactly its points', () => {
    fc.assert(
      fc.property(deviceId, message, (id, msg) => {
        const result = parseTelemetry(`devices/${id}/telemetry`, enc.encode(JSON.stringify(msg)), NOW);
        expect(result.ok).toBe(true);
        if (!result.ok) return;
        const expected = (Array.isArray(msg) ? msg : [msg]).flatMap((s) => {
          const ts = s.ts === undefined ? NOW : typeof s.ts === 'number' ? s.ts : Date.parse(s.ts);
          // JSON keeps the last of duplicate keys; fc.dictionary has none. Key order follows JSON.parse.
          const parsed = JSON.parse(JSON.stringify(s.metrics)) as Record<string, number | boolean>;
          return Object.entries(parsed).map(([metric, v]) => ({ deviceId: id, metric, ts, value: typeof v === 'boolean' ? (v ? 1 : 0) : v }));
        });
        // -0 survives JSON as 0; compare numerically.
        expect(result.samples.map((s) => ({ ...s, value: s.value + 0 }))).toEqual(expected.map((s) => ({ ...s, value: s.value + 0 })));
      }),
      { numRuns: 1000 },
    );
  });

  it('rejects a batch whole when any one sample is made invalid', () => {
    const poison = fc.constantFrom<Record<string, unknown>>(
      { metrics: { 'bad name': 1 } },
      { metrics: { ok: 'text' } },
      { metrics: {} },
      { ts: MIN_TS - 1, metrics: { ok: 1 } },
      { ts: MAX_TS + 1, metrics: { ok: 1 } },
      { ts: 'yesterday', metrics: { ok: 1 } },
      { metrics: { ok: null } },
      { extra: 1, metrics: { ok: 1 } },
    );
    fc.assert(
      fc.property(deviceId, fc.array(sample, { minLength: 1, maxLength: 10 }), poison, fc.nat(), (id, batch, bad, at) => {
        const mixed = [...batch];
        mixed.splice(at % (batch.length + 1), 0, bad as never);
        const result = parseTelemetry(`devices/${id}/telemetry`, enc.encode(JSON.stringify(mixed)), NOW);
        expect(result.ok).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });
});
