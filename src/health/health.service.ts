// Decides the service's health from its dependencies. Each check has its own
// timeout so a hung dependency never hangs /health.
import { Injectable } from '@nestjs/common';
import { IngestionService } from '../ingestion/ingestion.service';
import { DatabaseService } from '../storage/database.service';
import { RedisConnection } from '../redis/redis-connection';

export type CheckStatus = 'up' | 'down';
export interface CheckResult {
  status: CheckStatus;
  latencyMs?: number;
  error?: string;
  backend?: 'memory';
}
export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  checks: Record<string, CheckResult>;
}

const CHECK_TIMEOUT_MS = 1000;

async function timed(check: () => Promise<unknown>): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return { status: 'up', latencyMs: Math.round((performance.now() - started) * 10) / 10 };
  } catch (error) {
    return { status: 'down', error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

@Injectable()
export class HealthService {
  /** Dependencies whose failure only degrades the service (Redis joins here). */
  private readonly optional = new Set<string>(['redis']);

  constructor(
    private readonly db: DatabaseService,
    private readonly ingestion: IngestionService,
    private readonly redis: RedisConnection,
  ) {}

  private redisCheck(): Promise<CheckResult> {
    // Without REDIS_URL the memory cache is the configured backend, not a failure.
    if (!this.redis.configured) return Promise.resolve({ status: 'up', backend: 'memory' });
    // Known down: answer at once instead of waiting out a command timeout on every call.
    if (!this.redis.isUp) return Promise.resolve({ status: 'down', error: this.redis.error ?? 'unreachable' });
    return timed(() => this.redis.ping());
  }

  async report(): Promise<HealthReport> {
    const [postgres, redis] = await Promise.all([
      // Its own deadline frees the pooled connection too, so health checks
      // against a silent database cannot use up the pool.
      timed(() => this.db.query('SELECT 1', undefined, CHECK_TIMEOUT_MS)),
      this.redisCheck(),
    ]);
    const mqtt: CheckResult = this.ingestion.source.connected
      ? { status: 'up' }
      : { status: 'down', error: `${this.ingestion.source.name} source not connected` };
    const checks: Record<string, CheckResult> = { postgres, redis, mqtt };
    const failed = Object.entries(checks)
      .filter(([, c]) => c.status === 'down')
      .map(([name]) => name);
    const status = failed.length === 0 ? 'ok' : failed.every((name) => this.optional.has(name)) ? 'degraded' : 'down';
    return { status, checks };
  }
}
