// The two device-status metrics, on the app's one Registry.
// telemetry_devices_online is read from PostgreSQL at scrape time, so every
// instance reports the same fleet-wide figure (Grafana takes max, not sum);
// the change counter is incremented only by the instance that made a change
// (sum over instances = the number of changes).
import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { ScrapedCount } from '../metrics/scraped-count';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { DeviceStatusStore } from './device-status.store';

/** A scrape never waits longer than this for the count; it reports the last known figure instead. */
const COUNT_TIMEOUT_MS = 1000;

@Injectable()
export class DeviceStatusMetrics {
  readonly changes: Counter<'status'>;
  readonly online: Gauge;

  constructor(metrics: TelemetryMetrics, store: DeviceStatusStore) {
    this.changes = new Counter({
      name: 'telemetry_device_status_changes_total',
      help: 'Device status changes (online/offline), counted by the instance that made them',
      labelNames: ['status'],
      registers: [metrics.registry],
    });
    for (const status of ['online', 'offline']) this.changes.labels(status).inc(0);
    const online = new ScrapedCount(() => store.countOnline(), { maxAgeMs: 0, timeoutMs: COUNT_TIMEOUT_MS });
    this.online = new Gauge({
      name: 'telemetry_devices_online',
      help: 'Devices currently online (fleet-wide, from PostgreSQL; the same on every instance)',
      registers: [metrics.registry],
      async collect() {
        this.set((await online.get()) ?? 0);
      },
    });
  }
}
