// Owns the sample's way in: message source (MQTT client or embedded broker),
// payload validation, batching, acknowledgement after commit. What happens
// next is announced as `batch.committed` on TelemetryEvents.
import { Module } from '@nestjs/common';
import { BrokerModule } from '../broker/broker.module';
import { StorageModule } from '../storage/storage.module';
import { IngestBatcher } from './ingest-batcher';
import { IngestionService } from './ingestion.service';

@Module({
  imports: [StorageModule, BrokerModule],
  providers: [IngestBatcher, IngestionService],
  exports: [IngestBatcher, IngestionService],
})
export class IngestionModule {}
