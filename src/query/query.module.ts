// Owns the REST query API: cache-aside answers (TelemetryQueryService) over
// the storage module's read SQL, admin routes behind AdminKeyGuard.
import { Module } from '@nestjs/common';
import { CacheModule } from '../cache/cache.module';
import { StorageModule } from '../storage/storage.module';
import { AdminKeyGuard } from './admin-key.guard';
import { DashboardController } from './dashboard.controller';
import { DevicesController } from './devices.controller';
import { SeriesController } from './series.controller';
import { SeriesService } from './series.service';
import { TelemetryQueryService } from './telemetry-query.service';

@Module({
  imports: [StorageModule, CacheModule],
  providers: [TelemetryQueryService, AdminKeyGuard, SeriesService],
  controllers: [DevicesController, DashboardController, SeriesController],
  exports: [TelemetryQueryService],
})
export class QueryModule {}
