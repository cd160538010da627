// Feeds the batcher from the embedded broker. The device's PUBACK is the
// `ack` of each message, so a device is acknowledged only after commit.
import type { EmbeddedBroker } from '../broker/embedded-broker';
import type { IngestBatcher } from './ingest-batcher';
import type { MessageSource, StatusMessageHandler } from './ingest-message';

export class EmbeddedSource implements MessageSource {
  readonly name = 'embedded';
  private paused = false;

  constructor(
    private readonly broker: EmbeddedBroker,
    private readonly batcher: IngestBatcher,
    private readonly onStatus: StatusMessageHandler = () => undefined,
  ) {}

  get connected(): boolean {
    return this.broker.listening;
  }

  async start(): Promise<void> {
    this.broker.onTelemetry((topic, payload, ack) => {
      if (this.paused) return; // never acknowledged: the device sends it again after reconnecting
      // When the batcher is full the message waits there; the device's PUBACK waits with it.
      this.batcher.offer({ topic, payload, receivedAtMs: Date.now(), ack });
    });
    this.broker.onStatus((topic, payload) => {
      if (!this.paused) this.onStatus(topic, payload, Date.now());
    });
    await this.broker.start();
  }

  async pause(): Promise<void> {
    this.paused = true;
    this.broker.closeListener();
  }

  async stop(): Promise<void> {
    await this.broker.stop();
  }
}
