// The two status metrics of CONTRACT §9, on the app's one Registry.
// telemetry_devices_online is read from PostgreSQL at scrape time, so every
// instance reports the same fleet-wide figure (Grafana takes max, not sum);
// the change counter is incremented only by the instance that made a change
// (sum over instances = the number of changes).
import { Injectable } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { DeviceStatusStore } from './device-status.store';

/** A scrape never waits longer than this for the count; it reports the last known figure instead. */
const COUNT_TIMEOUT_MS = 1000;

@Injectable()
export class DeviceStatusMetrics {
  readonly changes: Counter<'status'>;
  readonly online: Gauge;
  private lastOnline = 0;

  constructor(metrics: TelemetryMetrics, store: DeviceStatusStore) {
    this.changes = new Counter({
      name: 'telemetry_device_status_changes_total',
      help: 'Device status changes (online/offline), counted by the instance that made them',
      labelNames: ['status'],
      registers: [metrics.registry],
    });
    for (const status of ['online', 'offline']) this.changes.labels(status).inc(0);
    // prom-client calls collect() with the gauge as `this`; the last count is kept here.
    const remember = (count: number | undefined) => {
      if (count !== undefined) this.lastOnline = count;
      return this.lastOnline;
    };
    this.online = new Gauge({
      name: 'telemetry_devices_online',
      help: 'Devices currently online (fleet-wide, from PostgreSQL; the same on every instance)',
      registers: [metrics.registry],
      async collect() {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), COUNT_TIMEOUT_MS);
        });
        const count = await Promise.race([store.countOnline().catch(() => undefined), timeout]);
        clearTimeout(timer);
        this.set(remember(count));
      },
    });
  }
}
