// Owns live feeds: the /ws gateway, cross-instance fan-out of committed
// samples over Redis pub/sub. Its rate limit is the `ws` throttler of the
// global ThrottlerModule (src/rate-limit/).
import { Module, type OnApplicationBootstrap } from '@nestjs/common';
import { CacheModule } from '../cache/cache.module';
import { IngestBatcher } from '../ingestion/ingest-batcher';
import { IngestionModule } from '../ingestion/ingestion.module';
import { QueryModule } from '../query/query.module';
import { StorageModule } from '../storage/storage.module';
import { FanoutService } from './fanout.service';
import { RealtimeGateway } from './realtime.gateway';

@Module({
  imports: [CacheModule, IngestionModule, QueryModule, StorageModule],
  providers: [FanoutService, RealtimeGateway],
  exports: [FanoutService],
})
export class RealtimeModule implements OnApplicationBootstrap {
  constructor(
    private readonly fanout: FanoutService,
    private readonly batcher: IngestBatcher,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.batcher.onCommitted((batch) => this.fanout.publishCommitted(batch.samples));
    await this.fanout.start();
  }
}
