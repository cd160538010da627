import { Body, Controller, Get, HttpCode, Post, UseGuards } from '@nestjs/common';
import { cacheKeys } from '../redis/redis-names';
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

  @Get('dashboard/metrics')
  dashboard() {
    return this.service.dashboard();
  }

  @Get('cache/stats')
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
  async clear(@Body() body: unknown) {
    const { pattern } = parseClearBody(body);
    let cleared = 0;
    for (const p of pattern ? [pattern] : cacheKeys.allCachePatterns()) cleared += await this.cache.delPattern(p);
    return { cleared };
  }
}
