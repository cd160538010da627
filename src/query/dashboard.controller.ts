import { Body, Controller, Get, HttpCode, Post, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { cacheKeys } from '../cache/cache-keys';
import { CacheService } from '../cache/cache.service';
import { AdminKeyGuard } from './admin-key.guard';
import { parseClearBody } from './query-params';
import { TelemetryQueryService } from './telemetry-query.service';

@Controller('api')
export class DashboardController {
  constructor(
    private readonly service: TelemetryQueryService,
    private readonly cache: CacheService,
  ) {}

  /** The `Age` header says how many seconds ago the (cached) figures were computed. */
  @Get('dashboard/metrics')
  async dashboard(@Res({ passthrough: true }) reply: FastifyReply) {
    const { metrics, ageS } = await this.service.dashboardWithAge();
    reply.header('age', String(ageS));
    return metrics;
  }

  @Get('cache/stats')
  async cacheStats() {
    const [keys, memoryBytes] = await Promise.all([this.cache.countKeys('telemetry:*'), this.cache.memoryBytes()]);
    const c = this.cache.classStats();
    return {
      backend: this.cache.backend,
      keys,
      memoryBytes,
      caches: { latest: c.latest, dashboard: c.dashboard, deviceStats: c.device_stats, hourly: c.hourly },
    };
  }

  @Post('cache/clear')
  @HttpCode(200)
  @UseGuards(AdminKeyGuard)
  async clear(@Body() body: unknown) {
    const { pattern } = parseClearBody(body);
    let cleared = 0;
    for (const p of pattern ? [pattern] : cacheKeys.allCachePatterns()) cleared += await this.cache.delPattern(p);
    return { cleared };
  }
}
