// Answer schemas of /health and /health/live for the OpenAPI document; each
// class implements the type the route returns, so the two cannot drift apart.
import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import type { CheckResult, HealthReport } from './health.service';

export class CheckResultModel implements CheckResult {
  @ApiProperty({ enum: ['up', 'down'] })
  status!: 'up' | 'down';

  @ApiPropertyOptional({ description: 'round trip of the check, when it succeeded', example: 0.8 })
  latencyMs?: number;

  @ApiPropertyOptional({ description: 'why the check failed', example: 'timed out after 1000 ms' })
  error?: string;

  @ApiPropertyOptional({ enum: ['memory'], description: 'redis only: no REDIS_URL, the in-process cache is in use' })
  backend?: 'memory';
}

export class HealthChecksModel {
  @ApiProperty({ type: () => CheckResultModel })
  postgres!: CheckResultModel;

  @ApiProperty({ type: () => CheckResultModel, description: 'down only degrades the service: the cache falls back to memory' })
  redis!: CheckResultModel;

  @ApiProperty({ type: () => CheckResultModel, description: 'the MQTT connection (or the embedded broker)' })
  mqtt!: CheckResultModel;
}

export class HealthReportModel implements HealthReport {
  @ApiProperty({ enum: ['ok', 'degraded', 'down'], description: 'degraded: Redis is down; down: PostgreSQL or MQTT is down' })
  status!: 'ok' | 'degraded' | 'down';

  @ApiProperty({ type: () => HealthChecksModel })
  checks!: Record<string, CheckResult>;
}

export class LivenessModel {
  @ApiProperty({ enum: ['ok'] })
  status!: 'ok';
}
