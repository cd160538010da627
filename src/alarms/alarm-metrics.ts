// The two alarm metrics. The gauge is computed when Prometheus scrapes, from
// PostgreSQL, so every instance reports the same fleet-wide figure however
// alarms were raised, acknowledged or cleared (and by which instance).
import { Injectable, Logger } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { SEVERITIES } from './alarm-rule';
import { AlarmStore } from './alarm-store';

export const NOTIFICATION_RESULTS = ['sent', 'failed', 'retry'] as const;
export type NotificationResult = (typeof NOTIFICATION_RESULTS)[number];

/** A scrape reuses a count younger than this (several Prometheus servers, or a refresh-happy Grafana). */
const COUNT_MAX_AGE_MS = 1000;

@Injectable()
export class AlarmMetrics {
  private readonly logger = new Logger('Alarms');
  readonly notifications: Counter<'result'>;
  private counted: { at: number; bySeverity: Map<string, number> } | undefined;
  private countFailed = false;

  constructor(metrics: TelemetryMetrics, store: AlarmStore) {
    this.notifications = new Counter({
      name: 'telemetry_alarm_notifications_total',
      help: 'Alarm webhook deliveries: sent, retry (failed attempt, will try again), failed (given up after 24 h)',
      labelNames: ['result'],
      registers: [metrics.registry],
    });
    for (const result of NOTIFICATION_RESULTS) this.notifications.labels(result).inc(0);
    // prom-client calls collect() with the gauge as `this`; the counts come from this class.
    const openCounts = () => this.openCounts(store);
    new Gauge({
      name: 'telemetry_alarms_active',
      help: 'Open alarms (active or acknowledged, not cleared) by severity, across all instances',
      labelNames: ['severity'],
      registers: [metrics.registry],
      async collect() {
        const counts = await openCounts();
        for (const severity of SEVERITIES) this.labels(severity).set(counts.get(severity) ?? 0);
      },
    });
  }

  private async openCounts(store: AlarmStore): Promise<Map<string, number>> {
    const cached = this.counted;
    if (cached && Date.now() - cached.at < COUNT_MAX_AGE_MS) return cached.bySeverity;
    try {
      const bySeverity = await store.openCountsBySeverity();
      this.counted = { at: Date.now(), bySeverity };
      this.countFailed = false;
      return bySeverity;
    } catch (error) {
      // A scrape must answer while PostgreSQL is down: report the last count.
      if (!this.countFailed) this.logger.warn({ msg: 'open alarm count failed; reporting the last one', error: String(error) });
      this.countFailed = true;
      return cached?.bySeverity ?? new Map();
    }
  }
}
