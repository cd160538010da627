// Owns the REST query API of CONTRACT §4: read SQL (TelemetryQueries),
// cache-aside answers (TelemetryQueryService), admin routes behind AdminKeyGuard.
import { Module } from '@nestjs/common';
import { CacheModule } from '../cache/cache.module';
import { StorageModule } from '../storage/storage.module';
import { AdminKeyGuard } from './admin-key.guard';
import { DashboardController } from './dashboard.controller';
import { DevicesController } from './devices.controller';
import { SeriesController } from './series.controller';
import { SeriesQueries } from './series-queries';
import { SeriesService } from './series.service';
import { TelemetryQueries } from './telemetry-queries';
import { TelemetryQueryService } from './telemetry-query.service';

@Module({
  imports: [StorageModule, CacheModule],
  providers: [TelemetryQueries, TelemetryQueryService, AdminKeyGuard, SeriesQueries, SeriesService],
  controllers: [DevicesController, DashboardController, SeriesController],
  exports: [TelemetryQueryService, TelemetryQueries],
})
export class QueryModule {}
