// Rate limits through @nestjs/throttler (docs/api.md Configuration, HTTP API, WebSocket): one
// ThrottlerModule with the `ws` and (when HTTP_RATE_LIMIT is set) `http`
// throttlers, over the project's Redis token-bucket storage. ThrottlerModule
// is global, so the WebSocket gateway injects the same options and storage.
import { type DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { RedisConnection } from '../redis/redis-connection';
import { HttpThrottlerGuard } from './http-throttler.guard';
import { throttlersFor } from './throttlers';
import { TokenBucketStorage } from './token-bucket-storage';

@Module({})
export class RateLimitModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: RateLimitModule,
      imports: [
        ThrottlerModule.forRootAsync({
          inject: [APP_CONFIG, RedisConnection],
          useFactory: (appConfig: AppConfig, redis: RedisConnection) => ({
            throttlers: throttlersFor(appConfig),
            storage: new TokenBucketStorage(redis),
          }),
        }),
      ],
      // Without HTTP_RATE_LIMIT no guard exists at all: nothing runs per request.
      providers: config.httpRateLimit ? [{ provide: APP_GUARD, useClass: HttpThrottlerGuard }] : [],
    };
  }
}
