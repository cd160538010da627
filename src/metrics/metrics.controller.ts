import { Controller, Get, Header } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import { TelemetryMetrics } from './telemetry-metrics';

@ApiTags('metrics')
@Controller()
export class MetricsController {
  constructor(private readonly metrics: TelemetryMetrics) {}

  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiOperation({ summary: 'Prometheus metrics', description: 'Prometheus text exposition format 0.0.4.' })
  @ApiProduces('text/plain')
  @ApiOkResponse({ schema: { type: 'string', example: 'telemetry_samples_ingested_total 1234\n' } })
  scrape(): Promise<string> {
    return this.metrics.registry.metrics();
  }
}
