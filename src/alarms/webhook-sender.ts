// Delivers the webhook outbox. Every instance runs a sender: it claims due
// events with FOR UPDATE SKIP LOCKED plus a lease (so each event has one
// sender at a time across instances), POSTs them, and records the outcome.
// A commit on this instance wakes it at once (nudge); a poll every
// POLL_INTERVAL_MS finds other instances' events, retries that fell due and
// events whose sender died mid-send (their lease ran out). An event is
// retried with capped, jittered exponential backoff until it is 24 h old,
// then abandoned (recorded in the outbox and counted as failed).
import { createHmac } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { AlarmMetrics } from './alarm-metrics';
import { AlarmStore, type OutboxRow } from './alarm-store';

export const POLL_INTERVAL_MS = 1000;
export const SEND_TIMEOUT_MS = 5000;
/** Longer than a send can take, so a live sender always finishes before another may claim. */
const LEASE_S = 15;
const MAX_IN_FLIGHT = 64;
export const GIVE_UP_AFTER_MS = 24 * 3600 * 1000;
const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 10 * 60 * 1000;
const PRUNE_EVERY_MS = 3600 * 1000;

/** Delay before attempt `attempts + 1`: 1 s, 2 s, 4 s … capped at 10 min, each scaled by a random 0.5–1. */
export function backoffMs(attempts: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempts - 1, 30));
  return Math.round(ceiling * (0.5 + random() / 2));
}

export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

@Injectable()
export class WebhookSender implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('AlarmWebhooks');
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private pumping = false;
  private again = false;
  private stopped = true;
  private claimFailing = false;
  private lastPrune = 0;
  private sentBatch: { ids: string[]; done: Promise<void> } | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly store: AlarmStore,
    private readonly metrics: AlarmMetrics,
  ) {}

  onApplicationBootstrap(): void {
    this.stopped = false;
    this.timer = setInterval(() => {
      this.nudge();
      this.pruneNow();
    }, POLL_INTERVAL_MS);
    this.timer.unref();
    // Events committed before a restart are due already.
    this.nudge();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    // Sends under way finish (at most SEND_TIMEOUT_MS) and record their outcome while the database is still open.
    await Promise.allSettled([...this.inFlight]);
  }

  /** Looks for due events now (after a commit on this instance). */
  nudge(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    this.pump()
      .catch((error: unknown) => {
        if (!this.claimFailing) this.logger.warn({ msg: 'webhook outbox unavailable', error: String(error) });
        this.claimFailing = true;
      })
      .finally(() => {
        this.pumping = false;
      });
  }

  private async pump(): Promise<void> {
    do {
      this.again = false;
      const room = MAX_IN_FLIGHT - this.inFlight.size;
      if (room <= 0 || this.stopped) return;
      const rows = await this.store.claimDue(room, LEASE_S);
      this.claimFailing = false;
      for (const row of rows) {
        const sending: Promise<void> = this.deliver(row).finally(() => {
          this.inFlight.delete(sending);
          // A full claim may have left more due events behind: claim again once
          // half the slots are free (one claim per event would double the queries).
          if (rows.length === room && this.inFlight.size <= MAX_IN_FLIGHT / 2) this.nudge();
        });
        this.inFlight.add(sending);
      }
      if (rows.length === room) return;
    } while (this.again);
  }

  private async deliver(row: OutboxRow): Promise<void> {
    const error = await this.post(row);
    try {
      if (error === undefined) {
        await this.recordSent(row.id);
        this.metrics.notifications.labels('sent').inc();
        return;
      }
      const delay = backoffMs(row.attempts);
      if (Date.now() + delay - row.createdAt.getTime() > GIVE_UP_AFTER_MS) {
        await this.store.markFailed(row.id, error);
        this.metrics.notifications.labels('failed').inc();
        this.logger.warn({ msg: 'alarm webhook abandoned after 24 h of failures', eventId: row.id, attempts: row.attempts, error });
        return;
      }
      await this.store.markRetry(row.id, delay, error);
      this.metrics.notifications.labels('retry').inc();
      if (row.attempts === 1) this.logger.warn({ msg: 'alarm webhook failed; retrying with backoff', eventId: row.id, error });
    } catch (dbError) {
      // The outcome is lost; the lease runs out and the event is sent again (at least once).
      this.logger.warn({ msg: 'could not record webhook outcome', eventId: row.id, error: String(dbError) });
    }
  }

  /** Deliveries that finish together are recorded with one UPDATE. */
  private recordSent(id: string): Promise<void> {
    if (!this.sentBatch) {
      const batch = { ids: [] as string[], done: undefined as unknown as Promise<void> };
      batch.done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        this.sentBatch = undefined;
        return this.store.markSent(batch.ids);
      });
      this.sentBatch = batch;
    }
    this.sentBatch.ids.push(id);
    return this.sentBatch.done;
  }

  /** Undefined on a 2xx answer, else what went wrong. */
  private async post(row: OutboxRow): Promise<string | undefined> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'telemetry-hub',
      'x-telemetry-event-id': row.id,
    };
    const secret = this.config.alarms.webhookSecret;
    if (secret) headers['x-telemetry-signature'] = signature(secret, row.body);
    try {
      const res = await fetch(row.url, { method: 'POST', headers, body: row.body, redirect: 'manual', signal: AbortSignal.timeout(SEND_TIMEOUT_MS) });
      await res.arrayBuffer().catch(() => undefined);
      return res.status >= 200 && res.status < 300 ? undefined : `HTTP ${res.status}`;
    } catch (error) {
      const e = error as Error & { cause?: { code?: string } };
      if (e.name === 'TimeoutError') return `no answer within ${SEND_TIMEOUT_MS / 1000} s`;
      return e.cause?.code ?? e.message;
    }
  }

  private pruneNow(): void {
    if (Date.now() - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = Date.now();
    this.store.pruneOutbox().catch(() => undefined);
  }
}
