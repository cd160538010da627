// Owns the PostgreSQL connection: starts embedded PostgreSQL when no
// DATABASE_URL is set, opens the TypeORM DataSource (pg pool), runs pending
// migrations at start-up, and reports reachability once per state change.
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { dataSourceOptions } from './data-source-options';
import { EMBEDDED_MAX_CONNECTIONS, EmbeddedPostgres } from './embedded-postgres';

const POOL_SIZE = 10;
/**
 * Longest a service statement (a batch write, a read) may take before its
 * connection is given up. Far above a normal batch write (tens of ms, a few
 * seconds on a loaded machine) and below the minute an operator would call hung.
 */
export const QUERY_TIMEOUT_MS = 10_000;

/** The part of a pg Client used to drop a hung connection's socket. */
interface PgClientSocket {
  connection?: { stream?: { destroy(): void } };
}
/** Arbitrary, fixed: the advisory lock id that serialises migrations across instances. */
const MIGRATION_LOCK_KEY = 7_243_001;

@Injectable()
export class DatabaseService implements OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  private embedded: EmbeddedPostgres | undefined;
  private source: DataSource | undefined;
  private reachable = true;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /** Called by StorageModule's async provider so dependants get a ready database. */
  async start(): Promise<void> {
    let url = this.config.database.url;
    if (!url) {
      const started = Date.now();
      this.embedded = await EmbeddedPostgres.start(this.config.database.dataDir);
      url = this.embedded.url;
      this.logger.log({ msg: 'embedded PostgreSQL started', dataDir: this.config.database.dataDir, ms: Date.now() - started });
    }
    const poolSize = this.embedded ? EMBEDDED_MAX_CONNECTIONS : POOL_SIZE;
    this.source = new DataSource(dataSourceOptions(url, poolSize));
    await this.source.initialize();
    const applied = await this.migrate(this.source);
    if (applied.length > 0) this.logger.log({ msg: 'migrations applied', migrations: applied.map((m) => m.name) });
    this.logger.log({ msg: 'PostgreSQL ready', embedded: this.isEmbedded });
  }

  /**
   * Instances starting together on a fresh database would race to create the
   * same tables; a session advisory lock lets one migrate while the others
   * wait and then find nothing left to do.
   */
  private async migrate(source: DataSource) {
    const runner = source.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      return await source.runMigrations({ transaction: 'each' });
    } finally {
      await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
      await runner.release();
    }
  }

  get isEmbedded(): boolean {
    return this.embedded !== undefined;
  }

  get dataSource(): DataSource {
    if (!this.source) throw new Error('database not started');
    return this.source;
  }

  /**
   * Runs one statement on a pooled connection and gives up after `timeoutMs`.
   * A link that goes silent (dropped route, lost NAT/conntrack state) neither
   * answers nor resets: without a deadline the write, and the PUBACKs behind
   * it, would wait forever. The connection that timed out is discarded, not
   * returned to the pool: its statement is still pending on it, so anything
   * run on it next would queue behind a reply that may never come.
   */
  async query<T = unknown>(sql: string, params?: unknown[], timeoutMs = QUERY_TIMEOUT_MS): Promise<T[]> {
    const runner = this.dataSource.createQueryRunner();
    let timer: NodeJS.Timeout | undefined;
    try {
      const client = (await runner.connect()) as PgClientSocket;
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new Error(`query timed out after ${timeoutMs} ms`);
          reject(error);
          // TypeORM releases a connection to the pool as healthy unless given
          // the error; pg-pool then ends it. The socket is dropped at once
          // because ending politely needs the silent peer to answer.
          void (runner as unknown as { releasePostgresConnection(err: unknown): Promise<void> }).releasePostgresConnection(error);
          client.connection?.stream?.destroy();
        }, timeoutMs);
      });
      return (await Promise.race([runner.query(sql, params), deadline])) as T[];
    } finally {
      clearTimeout(timer);
      await runner.release();
    }
  }

  /** When the last call that succeeded had started (epoch ms). */
  private lastOkStartedAt = 0;

  /**
   * Records the outcome of a database call that started at `startedAt`;
   * logs only when reachability flips. A failure of a call that started
   * before a success was seen tells nothing new (e.g. a write stuck on a
   * silent connection, timing out after another lane already got through).
   */
  markReachable(ok: boolean, error?: unknown, startedAt = Date.now()): void {
    if (ok) this.lastOkStartedAt = Math.max(this.lastOkStartedAt, startedAt);
    else if (startedAt < this.lastOkStartedAt) return;
    if (ok === this.reachable) return;
    this.reachable = ok;
    if (ok) this.logger.log('PostgreSQL reachable again');
    else this.logger.error({ msg: 'PostgreSQL unreachable', error: error instanceof Error ? error.message : String(error) });
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.source?.isInitialized) await this.source.destroy();
    this.source = undefined;
    if (this.embedded) {
      await this.embedded.stop();
      this.embedded = undefined;
    }
  }
}
