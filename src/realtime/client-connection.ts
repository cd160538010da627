// One WebSocket client: its subscriptions and its outgoing queue. The queue is
// the socket's own buffer, bounded by HIGH_WATER_BYTES: past it, samples are
// held back newest-per-device (an older one held for the same device is
// dropped and counted) and flushed once the client has read its backlog. A
// client that never reads therefore costs a bounded amount of memory and
// never delays anyone else.
import type WebSocket from 'ws';
import type { TelemetryMetrics } from '../metrics/telemetry-metrics';

export const HIGH_WATER_BYTES = 256 * 1024;

export class ClientConnection {
  readonly subscriptions = new Set<string>();
  /** deviceId → the newest sample frame not yet sent because the client is behind */
  private readonly held = new Map<string, string>();
  alive = true;
  consecutiveRejections = 0;
  /** Client messages are handled one at a time so answers come back in order. */
  inbox: Promise<void> = Promise.resolve();
  inboxDepth = 0;

  constructor(
    readonly socket: WebSocket,
    readonly ip: string,
    private readonly metrics: TelemetryMetrics,
  ) {}

  get open(): boolean {
    return this.socket.readyState === this.socket.OPEN;
  }

  /** Replies and control messages: always sent (they are rare and small). */
  send(frame: string): void {
    if (!this.open) return;
    this.socket.send(frame);
    this.metrics.wsMessagesSent.inc();
  }

  sendSample(deviceId: string, frame: string): void {
    if (!this.open) return;
    if (this.held.size === 0 && this.socket.bufferedAmount < HIGH_WATER_BYTES) {
      this.socket.send(frame);
      this.metrics.wsMessagesSent.inc();
      return;
    }
    if (this.held.has(deviceId)) this.metrics.wsDropped.inc();
    this.held.set(deviceId, frame);
  }

  /** Called periodically: sends what was held once the client has caught up. */
  flushHeld(): void {
    if (this.held.size === 0 || !this.open) return;
    for (const [deviceId, frame] of this.held) {
      if (this.socket.bufferedAmount >= HIGH_WATER_BYTES) return;
      this.held.delete(deviceId);
      this.socket.send(frame);
      this.metrics.wsMessagesSent.inc();
    }
  }

  /** Held frames are lost when the client goes away; count them as dropped. */
  discard(): void {
    if (this.held.size > 0) this.metrics.wsDropped.inc(this.held.size);
    this.held.clear();
  }
}
