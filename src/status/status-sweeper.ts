// Notices timeouts (docs/api.md Device status: within DEVICE_OFFLINE_AFTER_S + 2 s) without
// a timer per device. One instance at a time owns the sweep: it holds a
// PostgreSQL session advisory lock on a connection of its own, and every
// half second runs one indexed UPDATE over the online devices whose deadline
// (last_seen + timeout) has passed. The others try to take the lock once a
// second, so when the owner dies (its session ends) another takes over
// within a second. PostgreSQL, not Redis, decides ownership and holds the
// deadlines: the sweep keeps working while Redis is down, and after an outage
// of the whole service the first sweep (before ingestion starts) turns the
// devices that timed out meanwhile offline with since = last_seen + timeout.
import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { QueryRunner } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { DatabaseService } from '../storage/database.service';
import { DeviceStatusService } from './device-status.service';
import { DeviceStatusStore } from './device-status.store';

/** Arbitrary, fixed; distinct from the migration and partition locks. */
const SWEEP_LOCK_KEY = 7_243_016;
// Twice a second: a device is due up to 1 s after its deadline (last_seen is
// kept to the second), so this keeps detection within the deadline + 1.5 s.
const SWEEP_EVERY_MS = 500;
/** Devices turned offline per statement; a sweep repeats until fewer are due. */
const SWEEP_CHUNK = 5000;
const PRUNE_EVERY_MS = 3600_000;

@Injectable()
export class StatusSweeper implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('StatusSweeper');
  private runner: QueryRunner | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private lastPrune = 0;
  private failing = false;
  /** Wall time of the last sweep's statements (the bench reads it). */
  lastSweepMs = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly db: DatabaseService,
    private readonly store: DeviceStatusStore,
    private readonly status: DeviceStatusService,
  ) {}

  get owner(): boolean {
    return this.db.isEmbedded || this.runner !== undefined;
  }

  async onModuleInit(): Promise<void> {
    // Before ingestion starts: devices that went silent while the service was down go offline first.
    await this.tick();
    this.schedule();
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.releaseOwnership();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, SWEEP_EVERY_MS);
    this.timer.unref();
  }

  /** One sweep if this instance owns it (or can take it now). Exposed for tests. */
  async tick(): Promise<void> {
    try {
      if (!(await this.acquire())) return;
      const query = this.runner ? (sql: string, params?: unknown[]) => (this.runner as QueryRunner).query(sql, params) : undefined;
      const started = performance.now();
      for (;;) {
        const changes = await this.store.sweep(this.config.deviceOfflineAfterS, SWEEP_CHUNK, query);
        for (const change of changes) this.status.announce(change);
        if (changes.length < SWEEP_CHUNK || this.stopped) break;
      }
      this.lastSweepMs = performance.now() - started;
      await this.pruneHistory();
      if (this.failing) this.logger.log('device status sweep working again');
      this.failing = false;
    } catch (error) {
      if (!this.failing) this.logger.warn({ msg: 'device status sweep failed', error: error instanceof Error ? error.message : String(error) });
      this.failing = true;
      // The session may be gone (PostgreSQL restarted): give up ownership and take it again when possible.
      await this.releaseOwnership();
    }
  }

  private async acquire(): Promise<boolean> {
    if (this.owner) return true;
    const runner = this.db.dataSource.createQueryRunner();
    try {
      await runner.connect();
      const [row] = (await runner.query('SELECT pg_try_advisory_lock($1) AS locked', [SWEEP_LOCK_KEY])) as Array<{ locked: boolean }>;
      if (row.locked) {
        this.runner = runner;
        this.logger.log({ msg: 'this instance now sweeps device timeouts' });
        return true;
      }
    } catch (error) {
      await runner.release().catch(() => undefined);
      throw error;
    }
    await runner.release();
    return false;
  }

  private async releaseOwnership(): Promise<void> {
    const runner = this.runner;
    this.runner = undefined;
    if (!runner) return;
    await runner.query('SELECT pg_advisory_unlock($1)', [SWEEP_LOCK_KEY]).catch(() => undefined);
    await runner.release().catch(() => undefined);
  }

  private async pruneHistory(): Promise<void> {
    const days = this.config.storage.retentionDays;
    if (days === undefined || Date.now() - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = Date.now();
    const removed = await this.store.prune(new Date(Date.now() - days * 24 * 3600_000));
    if (removed > 0) this.logger.log({ msg: 'device status history pruned', removed, retentionDays: days });
  }
}
