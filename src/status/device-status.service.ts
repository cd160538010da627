// Device online/offline (docs/api.md Device status): makes the transitions caused by
// committed batches and by messages on devices/{id}/status, and announces
// each change it made, once, through the cross-instance fan-out.
//
// After a commit, only devices not known to be online here cost a query: one
// statement for all of them, none when every device in the batch is known
// online. "Known online" is a per-instance belief that expires: a device
// confirmed online by a commit that carried its message at time L cannot time
// out before L + timeout (last_seen is then at least L - 1 s, and the sweep
// waits a second past last_seen + timeout), so the belief holds until
// L + timeout - 0.5 s and each commit of the device here extends it. An offline change made elsewhere (a Last Will) reaches this
// instance through the fan-out and drops the belief; while that channel is
// down (or was, until re-subscribed) nothing is believed and every batch asks.
// The UPDATE is conditional, so asking too often is only a wasted statement,
// never a duplicate change.
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { RateLimitedLog } from '../logging/rate-limited-log';
import { FanoutService } from '../realtime/fanout.service';
import type { DeviceSeen } from '../telemetry/sample';
import { TelemetryEvents, type Unsubscribe } from '../telemetry/telemetry-events';
import { DeviceStatusMetrics } from './device-status-metrics';
import { DeviceStatusStore, type StatusChange } from './device-status.store';
import { parseStatusPayload, statusTopicDevice } from './status-payload';

/** Room for clock skew between an instance and PostgreSQL. */
const BELIEF_MARGIN_MS = 500;
const RETRY_MS = 1000;

@Injectable()
export class DeviceStatusService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('DeviceStatus');
  private readonly badStatusLog = new RateLimitedLog((msg, fields) => this.logger.warn({ msg, ...fields }));
  /** deviceId → until when (epoch ms) this instance may take it to be online without asking. */
  private readonly knownOnline = new Map<string, number>();
  /** Devices with a timeout of their own (offline_after_s), as the last online check answered. */
  private readonly timeouts = new Map<string, number>();
  private epoch = -1;
  /** The newest message of each device whose check a belief skipped (see revoked()). */
  private readonly skipped = new Map<string, DeviceSeen>();
  /** Online-check statements run so far (tests read it). */
  onlineChecks = 0;
  /** Devices whose online check failed (database down): asked again with the next batch or after RETRY_MS. */
  private readonly retry = new Map<string, DeviceSeen>();
  private retryTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly subscriptions: Unsubscribe[] = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly store: DeviceStatusStore,
    private readonly fanout: FanoutService,
    private readonly metrics: DeviceStatusMetrics,
    private readonly events: TelemetryEvents,
  ) {}

  /** Before any source starts (sources start at bootstrap), so no early commit or status message is missed. */
  onModuleInit(): void {
    // The one place status hooks into the commit path.
    this.subscriptions.push(
      this.events.on('batch.committed', (batch) => this.committed(batch.devices)),
      this.events.on('device.status-message', (m) =>
        this.reported(m.topic, Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength), m.receivedAtMs),
      ),
    );
    this.fanout.onStatus((event) => {
      if (event.status === 'offline') this.revoked(event.deviceId, Date.parse(event.since));
    });
  }

  onApplicationShutdown(): void {
    for (const unsubscribe of this.subscriptions.splice(0)) unsubscribe();
    this.stopped = true;
    clearTimeout(this.retryTimer);
  }

  committed(devices: readonly DeviceSeen[]): void {
    const now = Date.now();
    const trusted = this.trustBeliefs();
    const ask: DeviceSeen[] = [];
    for (const d of devices) {
      const until = trusted ? this.knownOnline.get(d.deviceId) : undefined;
      if (until !== undefined && until > now) {
        this.extend(d.deviceId, d.lastSeenMs, until);
        this.skipped.set(d.deviceId, d);
        continue;
      }
      this.retry.delete(d.deviceId);
      ask.push(d);
    }
    for (const d of this.retry.values()) ask.push(d);
    this.retry.clear();
    if (ask.length > 0) void this.markOnline(ask);
  }

  private extend(deviceId: string, lastSeenMs: number, until: number): void {
    const timeoutS = this.timeouts.get(deviceId) ?? this.config.deviceOfflineAfterS;
    const next = lastSeenMs + timeoutS * 1000 - BELIEF_MARGIN_MS;
    if (next > until) this.knownOnline.set(deviceId, next);
  }

  private async markOnline(devices: DeviceSeen[]): Promise<void> {
    this.onlineChecks++;
    try {
      const { changes, checks } = await this.store.markOnline(devices);
      const trusted = this.trustBeliefs();
      const seen = new Map(devices.map((d) => [d.deviceId, d.lastSeenMs]));
      for (const check of checks) {
        if (check.status !== 'online' || !trusted) continue;
        const timeoutS = check.offlineAfterS ?? this.config.deviceOfflineAfterS;
        if (check.offlineAfterS !== null) this.timeouts.set(check.deviceId, check.offlineAfterS);
        else this.timeouts.delete(check.deviceId);
        this.knownOnline.set(check.deviceId, (seen.get(check.deviceId) ?? Date.now()) + timeoutS * 1000 - BELIEF_MARGIN_MS);
      }
      for (const change of changes) this.announce(change);
    } catch (error) {
      for (const d of devices) if (!this.retry.has(d.deviceId)) this.retry.set(d.deviceId, d);
      this.logger.warn({ msg: 'device online check failed; retrying', devices: devices.length, error: error instanceof Error ? error.message : String(error) });
      if (!this.retryTimer && !this.stopped) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          if (this.retry.size > 0) this.committed([]);
        }, RETRY_MS);
        this.retryTimer.unref();
      }
    }
  }

  /**
   * An offline change was announced (here or elsewhere). A commit of this
   * device here may have trusted the belief in the moment between that change
   * and its announcement: if a message skipped that way was received after the
   * device went offline, check it now (the conditional UPDATE decides).
   */
  private revoked(deviceId: string, sinceMs: number): void {
    this.knownOnline.delete(deviceId);
    const missed = this.skipped.get(deviceId);
    this.skipped.delete(deviceId);
    if (missed && missed.lastSeenMs > sinceMs) void this.markOnline([missed]);
  }

  /** Beliefs are only as good as the channel that revokes them; a re-subscription may have missed revocations. */
  private trustBeliefs(): boolean {
    if (!this.fanout.hearsOthers) {
      this.knownOnline.clear();
      return false;
    }
    const epoch = this.fanout.subscriptionEpoch;
    if (epoch !== this.epoch) {
      this.knownOnline.clear();
      this.epoch = epoch;
    }
    return true;
  }

  get defaultOfflineAfterS(): number {
    return this.config.deviceOfflineAfterS;
  }

  /** A per-device timeout changed here: the next message of that device asks again. */
  forget(deviceId: string): void {
    this.knownOnline.delete(deviceId);
    this.skipped.delete(deviceId);
    this.timeouts.delete(deviceId);
  }

  private reported(topic: string, payload: Buffer, receivedAtMs: number): void {
    const deviceId = statusTopicDevice(topic);
    const status = deviceId ? parseStatusPayload(payload) : undefined;
    if (!deviceId || !status) {
      this.badStatusLog.log('status message ignored', { topic: topic.slice(0, 200), detail: 'payload must be online or offline, plain or {"status": …}' });
      return;
    }
    if (status === 'offline') {
      this.knownOnline.delete(deviceId);
      this.skipped.delete(deviceId);
    }
    this.store.applyReported(deviceId, status, receivedAtMs).then(
      (change) => {
        if (change) this.announce(change);
      },
      (error: unknown) =>
        this.logger.warn({ msg: 'device status update failed', deviceId, status, error: error instanceof Error ? error.message : String(error) }),
    );
  }

  /** Every change this instance made, exactly once: counted here, delivered everywhere. */
  announce(change: StatusChange): void {
    this.metrics.changes.labels(change.status).inc();
    this.fanout.publishStatus(change);
  }
}
