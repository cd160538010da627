// Starts the configured message source (external broker or embedded one) and
// runs the graceful-shutdown sequence of docs/api.md Configuration: stop taking messages,
// flush and commit what was received, acknowledge it, then disconnect.
import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { EmbeddedBroker } from '../broker/embedded-broker';
import { EmbeddedSource } from './embedded-source';
import { IngestBatcher } from './ingest-batcher';
import type { MessageSource, StatusMessageHandler } from './ingest-message';
import { MqttConsumer } from './mqtt-consumer';
import { TelemetryEvents } from '../telemetry/telemetry-events';

const DRAIN_TIMEOUT_MS = 10_000;

@Injectable()
export class IngestionService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Ingestion');
  readonly source: MessageSource;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    readonly batcher: IngestBatcher,
    broker: EmbeddedBroker,
    events: TelemetryEvents,
  ) {
    // Messages on devices/{id}/status (device status, typically Last Wills) are announced, not stored.
    const onStatus: StatusMessageHandler = (topic, payload, receivedAtMs) => events.emit('device.status-message', { topic, payload, receivedAtMs });
    this.source = config.mqtt.url ? new MqttConsumer(config, batcher, onStatus) : new EmbeddedSource(broker, batcher, onStatus);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.source.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.source.pause();
    const drained = await Promise.race([
      this.batcher.drain().then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), DRAIN_TIMEOUT_MS).unref()),
    ]);
    if (!drained) {
      this.batcher.stop();
      this.logger.warn({ msg: 'shutdown without committing every message; the broker will redeliver them', pending: this.batcher.pendingMessages });
    }
    await this.source.stop();
  }
}
