// Owns the in-process event bus (TelemetryEvents): one instance per app, so
// producers and consumers meet without importing each other's modules.
import { Global, Logger, Module } from '@nestjs/common';
import { TelemetryEvents } from '../telemetry/telemetry-events';

@Global()
@Module({
  providers: [
    {
      provide: TelemetryEvents,
      useFactory: () => {
        const logger = new Logger('Events');
        return new TelemetryEvents((event, error) => logger.error({ msg: 'event listener failed', event, error: String(error) }));
      },
    },
  ],
  exports: [TelemetryEvents],
})
export class EventsModule {}
