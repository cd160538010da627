// A fuzzed MQTT stream (fast-check) mixing valid and invalid messages through
// the embedded broker: exactly the valid messages' points are stored.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { EmbeddedBroker } from '../../src/broker/embedded-broker';
import { DatabaseService } from '../../src/storage/database.service';
import { startTestApp, type TestApp } from '../support/test-app';
import { connectDevice, publishAll } from '../support/publisher';
import { waitFor } from '../support/free-port';
import { shareCpuAs } from '../support/cpu-share';

shareCpuAs('load');

const BASE_TS = Date.UTC(2026, 0, 1);

const validMetrics = fc.dictionary(
  fc.string({ unit: fc.constantFrom(...'abcxyz019_.-'.split('')), minLength: 1, maxLength: 12 }),
  fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e9, max: 1e9 }), fc.boolean()),
  { minKeys: 1, maxKeys: 6 },
);
const invalidPayload = fc.oneof(
  fc.string({ maxLength: 40 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }),
  fc.constant(JSON.stringify({ metrics: { 'bad name': 1 } })),
  fc.constant(JSON.stringify({ metrics: { t: 'warm' } })),
  fc.constant(JSON.stringify({ ts: 0, metrics: { t: 1 } })),
  fc.constant(JSON.stringify({ metrics: {} })),
  fc.constant(JSON.stringify([])),
  fc.jsonValue().map((v) => JSON.stringify({ metrics: { t: 1 }, [`x${typeof v}`]: v })),
);

describe('fuzzed MQTT stream', () => {
  let app: TestApp;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-fuzz-'));
    app = await startTestApp({ DATA_DIR: dataDir, MQTT_PORT: '0', LOG_LEVEL: 'error' });
  });
  afterAll(async () => {
    await app?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('stores exactly the valid messages', async () => {
    const items = fc.sample(
      fc.oneof(
        validMetrics.map((m) => ({ valid: true as const, metrics: m })),
        invalidPayload.map((p) => ({ valid: false as const, payload: p })),
      ),
      {
        numRuns: 600,
        seed: 20261121,
      },
    );
    let expected = 0;
    const messages = items.map((item, i) => {
      const topic = `devices/fuzz-${i % 7}/telemetry`;
      if (!item.valid) return { topic, payload: item.payload };
      expected += Object.keys(item.metrics).length;
      return { topic, payload: JSON.stringify({ ts: BASE_TS + i, metrics: item.metrics }) };
    });
    // Bad topics too: counted as rejected, nothing stored.
    messages.push({ topic: 'devices/bad id/telemetry', payload: JSON.stringify({ metrics: { t: 1 } }) });
    const device = await connectDevice(`mqtt://127.0.0.1:${app.get(EmbeddedBroker).port}`);
    try {
      await publishAll(device, messages);
    } finally {
      await device.endAsync();
    }
    const db = app.get(DatabaseService);
    const count = async () => (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM samples WHERE device_id LIKE 'fuzz-%'`))[0].n;
    // PUBACKs follow the commit, so everything is stored once publishAll resolves.
    expect(await count()).toBe(expected);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await count()).toBe(expected);
    const invalid = items.filter((i) => !i.valid).length;
    expect(invalid).toBeGreaterThan(50);
    await waitFor(
      async () => {
        const text = (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
        const rejected = [...text.matchAll(/^telemetry_messages_rejected_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
        return rejected === invalid + 1;
      },
      5000,
      'every invalid message counted as rejected',
    );
  });
});
