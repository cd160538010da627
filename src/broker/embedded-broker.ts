// The in-process MQTT broker (aedes, MQTT 3.1.1) used when MQTT_URL is unset.
// Devices connect to it on MQTT_PORT. With DEVICE_TOKENS set, a device logs in
// with username = its id and password = its token, and may only publish and
// subscribe under devices/<own id>/. Telemetry is taken in aedes'
// `authorizePublish` hook: for QoS 1 aedes writes the device's PUBACK right
// after that hook calls back (its `published` hook runs only after the PUBACK
// is sent), so calling back after commit gives ack-after-commit end to end.
import { createServer, type Server } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Aedes, type AuthenticateError, type Client } from 'aedes';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { mqttPortInUse } from '../startup/startup-problem';

export type TelemetryHandler = (topic: string, payload: Buffer, callback: () => void) => void;
/** devices/{id}/status messages, the devices' Last Wills included (aedes authorises those too). */
export type StatusHandler = (topic: string, payload: Buffer) => void;

const TELEMETRY_TOPIC = /^devices\/[^/]+\/telemetry$/;
const STATUS_TOPIC = /^devices\/[^/]+\/status$/;
const deviceIds = new WeakMap<Client, string>();

function tokenMatches(expected: string, given: Buffer | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(expected);
  return a.length === given.length && timingSafeEqual(a, given);
}

function ownsTopic(client: Client | null, topic: string): boolean {
  const id = client ? deviceIds.get(client) : undefined;
  if (!id) return false;
  const prefix = `devices/${id}`;
  return topic === prefix || topic.startsWith(`${prefix}/`);
}

@Injectable()
export class EmbeddedBroker {
  private readonly logger = new Logger('EmbeddedBroker');
  private broker: Aedes | undefined;
  private server: Server | undefined;
  private handler: TelemetryHandler | undefined;
  private statusHandler: StatusHandler | undefined;
  private listeningPort: number | undefined;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  get port(): number | undefined {
    return this.listeningPort;
  }

  get listening(): boolean {
    return this.server?.listening === true;
  }

  /** The ingestion module registers where telemetry goes before start(). */
  onTelemetry(handler: TelemetryHandler): void {
    this.handler = handler;
  }

  onStatus(handler: StatusHandler): void {
    this.statusHandler = handler;
  }

  async start(): Promise<void> {
    const tokens = this.config.mqtt.deviceTokens;
    const broker = await Aedes.createBroker({
      authenticate: (client, username, password, done) => {
        if (!tokens) return done(null, true);
        const expected = username !== undefined ? tokens.get(username) : undefined;
        if (expected !== undefined && tokenMatches(expected, password)) {
          deviceIds.set(client, username as string);
          return done(null, true);
        }
        const error = new Error('bad device id or token') as AuthenticateError;
        error.returnCode = 4; // BAD_USERNAME_OR_PASSWORD
        done(error, false);
      },
      authorizePublish: (client, packet, callback) => {
        const topic = packet.topic;
        if (topic.startsWith('$SYS')) return callback(new Error('$SYS is reserved'));
        if (tokens && client && !ownsTopic(client, topic)) return callback(new Error('topic not allowed for this device'));
        if (client && this.statusHandler && STATUS_TOPIC.test(topic)) this.statusHandler(topic, packet.payload as Buffer);
        if (!client || !this.handler || !TELEMETRY_TOPIC.test(topic)) return callback(null);
        this.handler(topic, packet.payload as Buffer, () => callback(null));
      },
      authorizeSubscribe: (client, subscription, callback) => {
        if (tokens && !ownsTopic(client, subscription.topic)) return callback(new Error('topic not allowed for this device'));
        callback(null, subscription);
      },
    });
    this.broker = broker;
    broker.on('clientError', (client, error) => this.logger.debug({ msg: 'client error', client: client.id, error: error.message }));
    const server = createServer(broker.handle);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => reject(error.code === 'EADDRINUSE' ? mqttPortInUse(this.config.mqtt.embeddedPort) : error));
      server.listen(this.config.mqtt.embeddedPort, () => {
        server.removeAllListeners('error');
        resolve();
      });
    });
    const address = server.address();
    this.listeningPort = typeof address === 'object' && address ? address.port : undefined;
    this.logger.log({ msg: 'embedded MQTT broker listening', port: this.listeningPort, auth: tokens ? 'device tokens' : 'open' });
  }

  /** Stops accepting new connections; connected devices stay until stop(). */
  closeListener(): void {
    if (this.server?.listening && !this.serverClosed) {
      const server = this.server;
      this.serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  async stop(): Promise<void> {
    this.closeListener();
    const broker = this.broker;
    this.broker = undefined;
    if (broker) await new Promise<void>((resolve) => broker.close(() => resolve()));
    await this.serverClosed;
    this.server = undefined;
  }

  private serverClosed: Promise<void> | undefined;
}
