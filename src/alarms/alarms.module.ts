// Owns threshold alarms: rules (CRUD, and each instance's in-memory index),
// evaluation of committed samples per rule × device with its state in
// PostgreSQL, the alarm lifecycle (active → acknowledged → cleared), `alarm`
// WebSocket events, the webhook outbox and its sender, and the alarm metrics.
import { Module } from '@nestjs/common';
import { AdminKeyGuard } from '../query/admin-key.guard';
import { RealtimeModule } from '../realtime/realtime.module';
import { StorageModule } from '../storage/storage.module';
import { AlarmAnnouncer } from './alarm-announcer';
import { AlarmEvaluationService } from './alarm-evaluation.service';
import { AlarmMetrics } from './alarm-metrics';
import { AlarmRules } from './alarm-rules.service';
import { AlarmStore } from './alarm-store';
import { AlarmRulesController, AlarmsController } from './alarms.controller';
import { WebhookSender } from './webhook-sender';

@Module({
  imports: [StorageModule, RealtimeModule],
  providers: [AlarmStore, AlarmMetrics, WebhookSender, AlarmAnnouncer, AlarmRules, AlarmEvaluationService, AdminKeyGuard],
  controllers: [AlarmRulesController, AlarmsController],
  exports: [AlarmEvaluationService],
})
export class AlarmsModule {}
