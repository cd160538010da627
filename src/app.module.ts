// Composition root. The validated config comes in from the caller; nothing
// here reads the environment.
import { DynamicModule, Module } from '@nestjs/common';
import type { AppConfig } from './config/app-config';
import { ConfigModule } from './config/config.module';
import { EventsModule } from './events/events.module';
import { HealthModule } from './health/health.module';
import { IngestionModule } from './ingestion/ingestion.module';
import { MetricsModule } from './metrics/metrics.module';
import { StorageModule } from './storage/storage.module';
import { RedisModule } from './redis/redis.module';
import { CacheModule } from './cache/cache.module';
import { QueryModule } from './query/query.module';
import { RealtimeModule } from './realtime/realtime.module';
import { RateLimitModule } from './rate-limit/rate-limit.module';
import { AlarmsModule } from './alarms/alarms.module';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        EventsModule,
        MetricsModule,
        RedisModule,
        StorageModule,
        CacheModule,
        IngestionModule,
        RateLimitModule.forRoot(config),
        QueryModule,
        RealtimeModule,
        AlarmsModule,
        HealthModule,
      ],
    };
  }
}
