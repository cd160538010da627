// Every metric of docs/api.md Metrics is exported with its type, and every metric a
// Grafana panel queries exists in /metrics of the running app.
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedBroker } from '../../src/broker/embedded-broker';
import { startTestApp, type TestApp } from '../support/test-app';
import { connectDevice, publishAll, telemetryTopic } from '../support/publisher';

const CONTRACT_METRICS: Record<string, string> = {
  telemetry_messages_received_total: 'counter',
  telemetry_messages_rejected_total: 'counter',
  telemetry_samples_ingested_total: 'counter',
  telemetry_ingest_batch_size: 'histogram',
  telemetry_ingest_flush_seconds: 'histogram',
  telemetry_ingest_lag_seconds: 'histogram',
  telemetry_cache_hits_total: 'counter',
  telemetry_cache_misses_total: 'counter',
  telemetry_cache_backend_up: 'gauge',
  telemetry_ws_connections: 'gauge',
  telemetry_ws_messages_sent_total: 'counter',
  telemetry_ws_rate_limited_total: 'counter',
  telemetry_ws_dropped_total: 'counter',
  telemetry_devices_online: 'gauge',
  telemetry_device_status_changes_total: 'counter',
  telemetry_alarms_active: 'gauge',
  telemetry_alarm_notifications_total: 'counter',
  http_request_duration_seconds: 'histogram',
  process_cpu_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_eventloop_lag_p99_seconds: 'gauge',
};

const PROMQL_WORDS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'rate',
  'irate',
  'increase',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'histogram_quantile',
  'le',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'topk',
  'bottomk',
  'abs',
  'clamp_min',
  'clamp_max',
  'delta',
  'deriv',
  'avg_over_time',
  'max_over_time',
  'min_over_time',
  'vector',
  'scalar',
]);

/** Metric names referenced by a PromQL expression (labels, strings, durations and functions removed). */
export function metricNamesIn(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '')
    .replace(/\{[^}]*\}/g, '')
    .replace(/\[[^\]]*\]/g, '')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, '');
  const names = stripped.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  return [...new Set(names.filter((n) => !PROMQL_WORDS.has(n) && !/^\d/.test(n)))];
}

function exprsIn(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) exprsIn(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'expr' && typeof v === 'string') out.push(v);
      else exprsIn(v, out);
    }
  }
  return out;
}

describe('metrics and Grafana dashboards', () => {
  let app: TestApp;
  let dataDir: string;
  let exposition = '';

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-metrics-'));
    app = await startTestApp({ DATA_DIR: dataDir, MQTT_PORT: '0', LOG_LEVEL: 'warn' });
    const device = await connectDevice(`mqtt://127.0.0.1:${app.get(EmbeddedBroker).port}`);
    await publishAll(device, [{ topic: telemetryTopic('metrics-dev'), payload: JSON.stringify({ metrics: { t: 1 } }) }]);
    await device.endAsync();
    await app.app.inject({ method: 'GET', url: '/api/devices' });
    exposition = (await app.app.inject({ method: 'GET', url: '/metrics' })).body;
  });

  afterAll(async () => {
    await app?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each(Object.entries(CONTRACT_METRICS))('exports %s as a %s', (name, type) => {
    expect(exposition).toContain(`# TYPE ${name} ${type}\n`);
  });

  it('labels HTTP durations with the route template and cache metrics with the four classes', () => {
    expect(exposition).toMatch(/http_request_duration_seconds_count\{method="GET",route="\/api\/devices",status_code="200"\} \d+/);
    for (const cache of ['latest', 'dashboard', 'device_stats', 'hourly']) {
      expect(exposition).toContain(`telemetry_cache_hits_total{cache="${cache}"}`);
    }
  });

  it('finds every metric a Grafana panel queries in /metrics', async () => {
    const dir = join(__dirname, '..', '..', 'grafana', 'dashboards');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    expect(files.length).toBeGreaterThan(0);
    const exported = new Set([...exposition.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{| )/gm)].map((m) => m[1]));
    const missing: string[] = [];
    let checked = 0;
    for (const file of files) {
      const dashboard = JSON.parse(await readFile(join(dir, file), 'utf8')) as unknown;
      for (const expr of exprsIn(dashboard)) {
        for (const name of metricNamesIn(expr)) {
          checked++;
          if (!exported.has(name)) missing.push(`${file}: ${name} (in ${expr})`);
        }
      }
    }
    expect(checked).toBeGreaterThan(15);
    expect(missing).toEqual([]);
  });

  it('recognises metric names in PromQL', () => {
    expect(metricNamesIn('histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{job="x"}[5m])))')).toEqual([
      'http_request_duration_seconds_bucket',
    ]);
    expect(metricNamesIn('sum(rate(a_total[1m])) / sum(rate(b_total[1m]))')).toEqual(['a_total', 'b_total']);
  });
});
