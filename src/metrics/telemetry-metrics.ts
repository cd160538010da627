// Every Prometheus metric the service exports (docs/api.md Metrics), registered on one
// Registry per application instance so a test can boot the app twice.
import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REJECT_REASONS } from '../telemetry/telemetry-rules';

export const CACHE_CLASSES = ['latest', 'dashboard', 'device_stats', 'hourly'] as const;
export type CacheClass = (typeof CACHE_CLASSES)[number];

@Injectable()
export class TelemetryMetrics {
  readonly registry = new Registry();

  readonly messagesReceived = new Counter({
    name: 'telemetry_messages_received_total',
    help: 'MQTT telemetry messages received (valid or not)',
    registers: [this.registry],
  });
  readonly messagesRejected = new Counter({
    name: 'telemetry_messages_rejected_total',
    help: 'MQTT telemetry messages rejected as bad input, by reason',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly samplesIngested = new Counter({
    name: 'telemetry_samples_ingested_total',
    help: 'Samples committed to PostgreSQL (duplicates of stored points excluded)',
    registers: [this.registry],
  });
  readonly ingestBatchSize = new Histogram({
    name: 'telemetry_ingest_batch_size',
    help: 'Samples per committed write batch',
    buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
    registers: [this.registry],
  });
  readonly ingestFlushSeconds = new Histogram({
    name: 'telemetry_ingest_flush_seconds',
    help: 'Time to write and commit one batch',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly ingestLagSeconds = new Histogram({
    name: 'telemetry_ingest_lag_seconds',
    help: 'Time from receiving a message to committing its samples',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly cacheHits = new Counter({
    name: 'telemetry_cache_hits_total',
    help: 'Cache hits by cache class',
    labelNames: ['cache'],
    registers: [this.registry],
  });
  readonly cacheMisses = new Counter({
    name: 'telemetry_cache_misses_total',
    help: 'Cache misses by cache class',
    labelNames: ['cache'],
    registers: [this.registry],
  });
  readonly cacheBackendUp = new Gauge({
    name: 'telemetry_cache_backend_up',
    help: '1 while the cache is served by Redis, 0 while it falls back to process memory',
    registers: [this.registry],
  });
  readonly wsConnections = new Gauge({
    name: 'telemetry_ws_connections',
    help: 'Open WebSocket connections',
    registers: [this.registry],
  });
  readonly wsMessagesSent = new Counter({
    name: 'telemetry_ws_messages_sent_total',
    help: 'WebSocket messages sent to clients',
    registers: [this.registry],
  });
  readonly wsRateLimited = new Counter({
    name: 'telemetry_ws_rate_limited_total',
    help: 'WebSocket client messages refused by the rate limit',
    registers: [this.registry],
  });
  readonly wsDropped = new Counter({
    name: 'telemetry_ws_dropped_total',
    help: 'Samples not sent to a slow WebSocket client (superseded by a newer one)',
    registers: [this.registry],
  });
  readonly ingestPending = new Gauge({
    name: 'telemetry_ingest_pending_messages',
    help: 'Messages taken from the broker and not yet committed and acknowledged (bounded by INGEST_MAX_PENDING_MESSAGES)',
    registers: [this.registry],
  });
  readonly ingestWaiting = new Gauge({
    name: 'telemetry_ingest_waiting_messages',
    help: 'Messages offered while the batcher was full, waiting for a free slot',
    registers: [this.registry],
  });
  readonly fanoutUnpublished = new Counter({
    name: 'telemetry_fanout_unpublished_total',
    help: "Committed batches delivered only to this instance's WebSocket clients because Redis was unavailable",
    registers: [this.registry],
  });
  readonly httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route template',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Pre-create every label value so dashboards show 0 instead of "no data".
    for (const reason of REJECT_REASONS) this.messagesRejected.labels(reason).inc(0);
    for (const cache of CACHE_CLASSES) {
      this.cacheHits.labels(cache).inc(0);
      this.cacheMisses.labels(cache).inc(0);
    }
  }
}
