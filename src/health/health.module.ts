// Owns GET /health (dependency checks with timeouts) and GET /health/live.
import { Module } from '@nestjs/common';
import { IngestionModule } from '../ingestion/ingestion.module';
import { StorageModule } from '../storage/storage.module';
import { HealthController } from './health.controller';
import { HealthService } from './health.service';

@Module({ imports: [StorageModule, IngestionModule], providers: [HealthService], controllers: [HealthController] })
export class HealthModule {}
