import { Controller, Get, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { HealthService, type HealthReport } from './health.service';

@Controller('health')
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get()
  async check(@Res({ passthrough: true }) reply: FastifyReply): Promise<HealthReport> {
    const report = await this.health.report();
    reply.status(report.status === 'down' ? 503 : 200);
    return report;
  }

  /** Liveness for container health checks: answers whenever the event loop does. */
  @Get('live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }
}
