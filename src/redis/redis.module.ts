// Owns the connection to Redis (when REDIS_URL is set) and its availability state.
import { Global, Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { RedisConnection } from './redis-connection';

@Global()
@Module({
  providers: [
    {
      provide: RedisConnection,
      inject: [APP_CONFIG, TelemetryMetrics],
      useFactory: async (config: AppConfig, metrics: TelemetryMetrics) => {
        const connection = new RedisConnection(config, metrics);
        await connection.start();
        return connection;
      },
    },
  ],
  exports: [RedisConnection],
})
export class RedisModule {}
