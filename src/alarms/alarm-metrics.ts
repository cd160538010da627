// The two alarm metrics. The gauge is computed when Prometheus scrapes, from
// PostgreSQL, so every instance reports the same fleet-wide figure however
// alarms were raised, acknowledged or cleared (and by which instance).
import { Injectable, Logger } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { ScrapedCount } from '../metrics/scraped-count';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { SEVERITIES } from './alarm-rule';
import { AlarmStore } from './alarm-store';

export const NOTIFICATION_RESULTS = ['sent', 'failed', 'retry'] as const;
export type NotificationResult = (typeof NOTIFICATION_RESULTS)[number];

/** A scrape reuses a count younger than this (several Prometheus servers, or a refresh-happy Grafana). */
const COUNT_MAX_AGE_MS = 1000;
/** A scrape never waits longer than this for the count (PostgreSQL silent): it reports the last one. */
const COUNT_TIMEOUT_MS = 1000;

@Injectable()
export class AlarmMetrics {
  private readonly logger = new Logger('Alarms');
  readonly notifications: Counter<'result'>;
  constructor(metrics: TelemetryMetrics, store: AlarmStore) {
    this.notifications = new Counter({
      name: 'telemetry_alarm_notifications_total',
      help: 'Alarm webhook deliveries: sent, retry (failed attempt, will try again), failed (given up after 24 h)',
      labelNames: ['result'],
      registers: [metrics.registry],
    });
    for (const result of NOTIFICATION_RESULTS) this.notifications.labels(result).inc(0);
    // One warning per outage, not per scrape: a scrape reports the last count meanwhile.
    let failing = false;
    const open = new ScrapedCount(
      async () => {
        const counts = await store.openCountsBySeverity();
        failing = false;
        return counts;
      },
      {
        maxAgeMs: COUNT_MAX_AGE_MS,
        timeoutMs: COUNT_TIMEOUT_MS,
        onError: (error) => {
          if (!failing) this.logger.warn({ msg: 'open alarm count failed; reporting the last one', error: String(error) });
          failing = true;
        },
      },
    );
    new Gauge({
      name: 'telemetry_alarms_active',
      help: 'Open alarms (active or acknowledged, not cleared) by severity, across all instances',
      labelNames: ['severity'],
      registers: [metrics.registry],
      async collect() {
        const counts = (await open.get()) ?? new Map<string, number>();
        for (const severity of SEVERITIES) this.labels(severity).set(counts.get(severity) ?? 0);
      },
    });
  }
}
