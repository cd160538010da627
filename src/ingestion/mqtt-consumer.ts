// Consumes telemetry from an external broker (MQTT_URL) through the shared
// subscription, with a persistent session under a stable client id.
//
// Acknowledge-after-commit without a one-message-per-connection cap: mqtt.js
// reads the next packet only after the PUBACK for the current one is sent, so
// holding its callback would serialise everything. Instead each QoS 1 message
// is handed to the batcher at once and the callback runs straight away, but
// the PUBACK mqtt.js then tries to send is intercepted at `_sendPacket` and
// held; it is written when the batch containing the message commits. A
// PUBACK held across a reconnect is dropped: the broker redelivers that
// message in the new session, and the idempotent write stores it once.
// (mqtt is pinned to an exact version because `_sendPacket` is internal.)
import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { Logger } from '@nestjs/common';
import type { AppConfig } from '../config/app-config';
import type { IngestBatcher } from './ingest-batcher';
import type { MessageSource } from './ingest-message';
import { SHARED_SUBSCRIPTION } from '../telemetry/telemetry-rules';

const SESSION_EXPIRY_S = 7 * 24 * 3600;

interface HeldAck {
  generation: number;
  /** The batch committed (or the message was rejected) before mqtt.js asked to send the PUBACK. */
  settled: boolean;
  /** mqtt.js asked to send the PUBACK and we are holding it. */
  held: boolean;
}

type SendPacket = (packet: { cmd: string; messageId?: number }, cb?: (err?: Error) => void, ...rest: unknown[]) => void;

export class MqttConsumer implements MessageSource {
  readonly name = 'mqtt';
  private readonly logger = new Logger('MqttConsumer');
  private client: MqttClient | undefined;
  private generation = 0;
  private readonly acks = new Map<number, HeldAck>();
  private paused = false;
  private isConnected = false;
  private lastError: string | undefined;
  private corked = false;

  constructor(
    private readonly config: AppConfig,
    private readonly batcher: IngestBatcher,
  ) {}

  get connected(): boolean {
    return this.isConnected;
  }

  get clientId(): string {
    return `telemetry-hub-${this.config.instanceId}`;
  }

  async start(): Promise<void> {
    const url = this.config.mqtt.url as string;
    const client = mqtt.connect(url, {
      clientId: this.clientId,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: SESSION_EXPIRY_S, receiveMaximum: 65535 },
      reconnectPeriod: 1000,
      connectTimeout: 5000,
      keepalive: 30,
      // We subscribe ourselves on every CONNACK: mqtt.js re-subscribes only when
      // the session is gone, but a restarted Mosquitto restores the session
      // without its $share subscription, and then nothing would arrive.
      resubscribe: false,
    });
    this.client = client;
    // Must be in place before CONNACK: a persistent session's backlog arrives right after it.
    client.handleMessage = (packet, done) => this.onMessage(packet, done);
    this.interceptPubacks(client);

    client.on('connect', (connack) => {
      this.generation++;
      this.acks.clear();
      client.subscribe(SHARED_SUBSCRIPTION, { qos: 1 }, (error) => {
        if (error) {
          this.setState(false, `subscribe failed: ${error.message}`);
          return;
        }
        this.setState(true);
        this.logger.log({ msg: 'subscribed', topic: SHARED_SUBSCRIPTION, clientId: this.clientId, sessionPresent: connack.sessionPresent });
      });
    });
    client.on('close', () => this.setState(false, this.lastError ?? 'connection closed'));
    client.on('error', (error) => {
      this.lastError = error.message;
      this.setState(false, error.message);
    });

    // Start-up waits briefly for the broker so tests and operators see a ready
    // service, but a broker that is down does not stop the service starting.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 5000);
      const check = setInterval(() => {
        if (this.isConnected) {
          clearTimeout(timer);
          clearInterval(check);
          resolve();
        }
      }, 20);
      timer.unref();
      setTimeout(() => clearInterval(check), 5000).unref();
    });
  }

  async pause(): Promise<void> {
    this.paused = true;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    // Let the last PUBACKs (uncorked on the next tick) reach the socket, then
    // disconnect; don't wait forever for a broker that no longer answers.
    await new Promise((resolve) => setImmediate(resolve));
    const ended = await Promise.race([
      client.endAsync(false).then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 3000).unref()),
    ]);
    if (!ended) client.end(true);
    this.isConnected = false;
  }

  private setState(connected: boolean, error?: string): void {
    if (connected === this.isConnected) return;
    this.isConnected = connected;
    if (connected) {
      this.lastError = undefined;
      this.logger.log({ msg: 'MQTT broker connected', clientId: this.clientId });
    } else {
      this.logger.warn({ msg: 'MQTT broker disconnected', error });
    }
  }

  private onMessage(packet: IPublishPacket, done: (error?: Error) => void): void {
    if (this.paused) {
      // Shutting down: keep reading (so the socket can close cleanly) but never
      // acknowledge: the broker redelivers this message after the restart.
      if (packet.qos === 1 && packet.messageId !== undefined) {
        this.acks.set(packet.messageId, { generation: this.generation, settled: false, held: false });
      }
      done();
      return;
    }
    // Back-pressure: when the batcher is full, done() waits until it takes the
    // message, and mqtt.js reads nothing more from the socket until then.
    this.handOver(packet, done);
  }

  private handOver(packet: IPublishPacket, onAccepted: () => void): void {
    let ack: () => void = noop;
    if (packet.qos === 1 && packet.messageId !== undefined) {
      const messageId = packet.messageId;
      const entry: HeldAck = { generation: this.generation, settled: false, held: false };
      this.acks.set(messageId, entry);
      ack = () => this.settle(messageId, entry);
    }
    this.batcher.offer({ topic: packet.topic, payload: packet.payload as Buffer, receivedAtMs: Date.now(), ack }, onAccepted);
  }

  private interceptPubacks(client: MqttClient): void {
    const internal = client as unknown as { _sendPacket: SendPacket };
    const send = internal._sendPacket.bind(client) as SendPacket;
    this.sendPacket = send;
    internal._sendPacket = (packet, cb, ...rest) => {
      if (packet.cmd === 'puback' && packet.messageId !== undefined) {
        const entry = this.acks.get(packet.messageId);
        if (entry && entry.generation === this.generation && !entry.settled) {
          entry.held = true;
          cb?.(); // lets mqtt.js read the next packet; the PUBACK itself waits for commit
          return;
        }
        if (entry) this.acks.delete(packet.messageId);
      }
      send(packet, cb, ...rest);
    };
  }

  private sendPacket: SendPacket = () => undefined;

  private settle(messageId: number, entry: HeldAck): void {
    if (entry.settled) return;
    entry.settled = true;
    if (!entry.held) return; // mqtt.js has not asked yet; it will send the PUBACK itself
    if (this.acks.get(messageId) === entry) this.acks.delete(messageId);
    const client = this.client;
    if (!client || entry.generation !== this.generation || !client.connected) return;
    // Coalesce the PUBACKs of one committed batch into as few socket writes as possible.
    if (!this.corked) {
      this.corked = true;
      client.stream.cork();
      process.nextTick(() => {
        this.corked = false;
        client.stream.uncork();
      });
    }
    this.sendPacket({ cmd: 'puback', messageId });
  }
}

function noop(): void {}
