// The /ws endpoint (docs/api.md WebSocket). A thin gateway: it owns connection
// lifecycle, the per-client rate limit and routing of the four client events;
// subscriptions and delivery live in FanoutService.
//
// The rate limit is @nestjs/throttler's `ws` throttler, taken here from the
// throttler's storage with the module's options rather than through a guard:
// a guard runs only for @SubscribeMessage handlers, after Nest has parsed the
// frame, so malformed frames would go uncharged, answers could overtake each
// other, and a refusal would surface as an exception event, not as
// RATE_LIMITED with retryAfterMs or a 1008 close after repeated refusals.
import { Inject, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { InjectThrottlerOptions, InjectThrottlerStorage, type ThrottlerModuleOptions } from '@nestjs/throttler';
import { type OnGatewayConnection, type OnGatewayDisconnect, WebSocketGateway } from '@nestjs/websockets';
import type { IncomingMessage } from 'node:http';
import type WebSocket from 'ws';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { TelemetryMetrics } from '../metrics/telemetry-metrics';
import { TelemetryQueryService } from '../query/telemetry-query.service';
import { MAX_CLIENT_MESSAGE_BYTES } from './app-ws-adapter';
import { ClientConnection } from './client-connection';
import { clientIp } from '../http/client-ip';
import { FanoutService } from './fanout.service';
import { throttlerLimit, WS_THROTTLER } from '../rate-limit/throttlers';
import type { TokenBucketStorage } from '../rate-limit/token-bucket-storage';
import { type ClientMessage, frame, parseClientMessage } from './ws-protocol';

const HEARTBEAT_MS = 30_000;
/** Messages refused in a row before a client that ignores RATE_LIMITED is closed. */
const MAX_CONSECUTIVE_REJECTIONS = 20;
/** Messages a client may have waiting for an answer before it is closed. */
const MAX_INBOX = 200;

@WebSocketGateway({ path: '/ws' })
export class RealtimeGateway implements OnGatewayConnection, OnGatewayDisconnect, BeforeApplicationShutdown {
  private readonly logger = new Logger('Realtime');
  private readonly connections = new Map<WebSocket, ClientConnection>();
  private readonly heartbeat: NodeJS.Timeout;
  private readonly rateLimit: { limit: number; ttlMs: number };

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly fanout: FanoutService,
    @InjectThrottlerStorage() private readonly limiter: TokenBucketStorage,
    @InjectThrottlerOptions() throttlerOptions: ThrottlerModuleOptions,
    private readonly queryService: TelemetryQueryService,
    private readonly metrics: TelemetryMetrics,
  ) {
    this.rateLimit = throttlerLimit(throttlerOptions, WS_THROTTLER);
    this.heartbeat = setInterval(() => this.checkAlive(), HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  handleConnection(socket: WebSocket, request: IncomingMessage): void {
    const client = new ClientConnection(socket, clientIp(request, this.config.trustProxy), this.metrics);
    this.connections.set(socket, client);
    this.fanout.addClient(client);
    this.metrics.wsConnections.set(this.connections.size);
    socket.on('pong', () => {
      client.alive = true;
    });
    socket.on('message', (data: Buffer, isBinary: boolean) => {
      if (client.inboxDepth >= MAX_INBOX) {
        client.socket.close(1008, 'too many messages in flight');
        return;
      }
      client.inboxDepth++;
      client.inbox = client.inbox
        .then(() => this.onMessage(client, data, isBinary))
        .catch((error: unknown) => this.logger.error({ msg: 'WebSocket message handling failed', error: String(error) }))
        .finally(() => {
          client.inboxDepth--;
        });
    });
  }

  handleDisconnect(socket: WebSocket): void {
    const client = this.connections.get(socket);
    if (!client) return;
    this.connections.delete(socket);
    this.fanout.removeClient(client);
    this.metrics.wsConnections.set(this.connections.size);
  }

  private async onMessage(client: ClientConnection, data: Buffer, isBinary: boolean): Promise<void> {
    const { limit, ttlMs } = this.rateLimit;
    const { isBlocked, retryAfterMs } = await this.limiter.increment(client.ip, ttlMs, limit, ttlMs, WS_THROTTLER);
    if (isBlocked) {
      this.metrics.wsRateLimited.inc();
      client.consecutiveRejections++;
      if (client.consecutiveRejections > MAX_CONSECUTIVE_REJECTIONS) {
        client.socket.close(1008, 'rate limit exceeded');
        return;
      }
      client.send(frame('error', { code: 'RATE_LIMITED', message: 'too many messages', retryAfterMs }));
      return;
    }
    client.consecutiveRejections = 0;
    const parsed = isBinary
      ? { ok: false as const, error: 'binary frames are not accepted' }
      : data.length > MAX_CLIENT_MESSAGE_BYTES
        ? { ok: false as const, error: `message larger than ${MAX_CLIENT_MESSAGE_BYTES} bytes` }
        : parseClientMessage(data);
    if (!parsed.ok) {
      client.send(frame('error', { code: 'BAD_REQUEST', message: parsed.error }));
      return;
    }
    try {
      await this.handle(client, parsed.message);
    } catch (error) {
      this.logger.warn({ msg: 'WebSocket request failed', event: parsed.message.event, error: error instanceof Error ? error.message : String(error) });
      client.send(frame('error', { code: 'INTERNAL', message: 'request failed; try again' }));
    }
  }

  private async handle(client: ClientConnection, message: ClientMessage): Promise<void> {
    switch (message.event) {
      case 'subscribe': {
        const { deviceId } = message.data;
        // Subscribe first so nothing committed while the snapshot loads is missed.
        this.fanout.subscribe(client, deviceId);
        const answer = deviceId === '*' ? null : await this.queryService.findLatest(deviceId);
        const latest = answer?.ts ? answer : null;
        client.send(frame('subscribed', { deviceId, latest }));
        return;
      }
      case 'unsubscribe': {
        this.fanout.unsubscribe(client, message.data.deviceId);
        client.send(frame('unsubscribed', { deviceId: message.data.deviceId }));
        return;
      }
      case 'latest': {
        const { deviceId } = message.data;
        // An unknown device answers like one without samples: WebSocket errors have no "not found" code.
        const latest = await this.queryService.findLatest(deviceId);
        client.send(frame('latest', latest ?? { deviceId, ts: null, metrics: {} }));
        return;
      }
      case 'dashboard': {
        client.send(frame('dashboard', await this.queryService.dashboard()));
        return;
      }
    }
  }

  private checkAlive(): void {
    for (const client of this.connections.values()) {
      if (!client.alive) {
        client.socket.terminate();
        continue;
      }
      client.alive = false;
      client.socket.ping();
    }
  }

  /** docs/api.md Configuration: WebSockets are closed with 1001 (going away) on shutdown. */
  beforeApplicationShutdown(): void {
    clearInterval(this.heartbeat);
    for (const client of this.connections.values()) client.socket.close(1001, 'server shutting down');
  }
}
