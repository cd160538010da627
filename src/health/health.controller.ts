import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { HealthReportModel, LivenessModel } from './health-models';
import { HealthService, type HealthReport } from './health.service';

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get()
  @ApiOperation({
    summary: 'Health of the service and its dependencies',
    description: 'PostgreSQL, Redis and MQTT, each checked with a 1 s timeout.',
  })
  @ApiOkResponse({ type: HealthReportModel, description: '`ok`, or `degraded` when only Redis is down' })
  @ApiServiceUnavailableResponse({ type: HealthReportModel, description: '`down`: PostgreSQL or MQTT is down' })
  async check(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthReport> {
    const report = await this.health.report();
    reply.status(report.status === 'down' ? 503 : 200);
    return report;
  }

  /** Liveness for container health checks: answers whenever the event loop does. */
  @Get('live')
  @ApiOperation({ summary: 'Liveness', description: 'Depends on nothing: for container health checks.' })
  @ApiOkResponse({ type: LivenessModel })
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }
}
