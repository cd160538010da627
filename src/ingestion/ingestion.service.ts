// Starts the configured message source (external broker or embedded one) and
// runs the graceful-shutdown sequence of CONTRACT §1: stop taking messages,
// flush and commit what was received, acknowledge it, then disconnect.
import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { EmbeddedBroker } from '../broker/embedded-broker';
import { EmbeddedSource } from './embedded-source';
import { IngestBatcher } from './ingest-batcher';
import type { MessageSource, StatusMessageHandler } from './ingest-message';
import { MqttConsumer } from './mqtt-consumer';
import { CacheService } from '../cache/cache.service';

const DRAIN_TIMEOUT_MS = 10_000;

@Injectable()
export class IngestionService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Ingestion');
  readonly source: MessageSource;
  private statusListener: StatusMessageHandler | undefined;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    readonly batcher: IngestBatcher,
    broker: EmbeddedBroker,
    cache: CacheService,
  ) {
    const onStatus: StatusMessageHandler = (topic, payload, receivedAtMs) => this.statusListener?.(topic, payload, receivedAtMs);
    this.source = config.mqtt.url ? new MqttConsumer(config, batcher, onStatus) : new EmbeddedSource(broker, batcher, onStatus);
    // After commit and ack: the latest-sample cache, one pipelined round trip per batch.
    batcher.onCommitted((batch) => {
      cache.recordLatest(batch.samples).catch((error: unknown) => this.logger.warn({ msg: 'latest cache update failed', error: String(error) }));
    });
  }

  /** Where messages on devices/{id}/status go (the device status module). */
  onStatusMessage(listener: StatusMessageHandler): void {
    this.statusListener = listener;
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
