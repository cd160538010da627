import { Body, Controller, Get, HttpCode, Post, Res, UseGuards } from '@nestjs/common';
import { ApiBody, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { cacheKeys } from '../redis/redis-names';
import { CacheService } from '../cache/cache.service';
import { ApiAdmin, ApiErrors } from '../http/api-docs';
import { AdminKeyGuard } from './admin-key.guard';
import { CacheClearBody, CacheClearedModel, CacheStatsModel, DashboardModel } from './api-models';
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
  @ApiTags('dashboard')
  @ApiOperation({
    summary: 'Fleet figures',
    description:
      'Device counts, samples over the last hour and 24 hours, ingest rate, top devices. Cached as `telemetry:dashboard` for CACHE_TTL_DASHBOARD_S (default 5 min); the `Age` header says how many seconds ago the figures were computed.',
  })
  @ApiOkResponse({
    type: DashboardModel,
    headers: {
      Age: { description: 'Seconds since the (cached) figures were computed; 0 when this request computed them.', schema: { type: 'integer', minimum: 0 } },
    },
  })
  async dashboard(@Res({ passthrough: true }) reply: FastifyReply) {
    const { metrics, ageS } = await this.service.dashboardWithAge();
    reply.header('age', String(ageS));
    return metrics;
  }

  @Get('cache/stats')
  @ApiTags('cache')
  @ApiOperation({ summary: 'Cache backend, size and hit ratios' })
  @ApiOkResponse({ type: CacheStatsModel })
  async cacheStats() {
    const [keys, memoryBytes] = await Promise.all([this.cache.countKeys(cacheKeys.everything()), this.cache.memoryBytes()]);
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
  @ApiTags('cache')
  @ApiOperation({ summary: 'Delete cache entries', description: 'Deletes with SCAN and UNLINK (never KEYS); the next reads load from PostgreSQL.' })
  @ApiAdmin()
  @ApiBody({ type: CacheClearBody, required: false })
  @ApiOkResponse({ type: CacheClearedModel })
  @ApiErrors(400, 413)
  async clear(@Body() body: unknown) {
    const { pattern } = parseClearBody(body);
    let cleared = 0;
    for (const p of pattern ? [pattern] : cacheKeys.allCachePatterns()) cleared += await this.cache.delPattern(p);
    return { cleared };
  }
}
