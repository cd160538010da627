// Device online/offline status (docs/api.md Device status): transitions from commits and
// status messages (DeviceStatusService), the timeout sweep (StatusSweeper),
// SQL (DeviceStatusStore), metrics and the REST routes.
import { Module } from '@nestjs/common';
import { MetricsModule } from '../metrics/metrics.module';
import { AdminKeyGuard } from '../query/admin-key.guard';
import { RealtimeModule } from '../realtime/realtime.module';
import { StorageModule } from '../storage/storage.module';
import { DeviceStatusMetrics } from './device-status-metrics';
import { DeviceStatusController } from './device-status.controller';
import { DeviceStatusService } from './device-status.service';
import { DeviceStatusStore } from './device-status.store';
import { StatusSweeper } from './status-sweeper';

@Module({
  imports: [StorageModule, RealtimeModule, MetricsModule],
  providers: [DeviceStatusStore, DeviceStatusMetrics, DeviceStatusService, StatusSweeper, AdminKeyGuard],
  controllers: [DeviceStatusController],
  exports: [DeviceStatusService, StatusSweeper],
})
export class StatusModule {}
