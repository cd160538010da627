// Owns the per-app Prometheus Registry, every metric on it, and GET /metrics.
import { Global, Module } from '@nestjs/common';
import { MetricsController } from './metrics.controller';
import { TelemetryMetrics } from './telemetry-metrics';

@Global()
@Module({ providers: [TelemetryMetrics], controllers: [MetricsController], exports: [TelemetryMetrics] })
export class MetricsModule {}
