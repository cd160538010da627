// Redis while it is up, the bounded memory store otherwise, switching within
// one command timeout (100 ms) and back by itself. What was written or
// invalidated during an outage is replayed as deletions on Redis before it is
// used again, and the memory store is emptied, so a value from the outage
// (which may differ between instances) is never served afterwards.
import { Logger } from '@nestjs/common';
import type { RedisConnection } from '../redis/redis-connection';
import { cacheKeys } from '../redis/redis-names';
import type { HotStore } from './hot-store';
import { MemoryStore } from './memory-store';
import { RedisStore } from './redis-store';

/** Keys remembered during an outage before falling back to clearing whole classes. */
const MAX_DIRTY_KEYS = 10_000;

export class FailoverStore {
  private readonly logger = new Logger('Cache');
  readonly memory: MemoryStore;
  private readonly redisStore: RedisStore | undefined;
  private readonly dirtyKeys = new Set<string>();
  private readonly dirtyPatterns = new Set<string>();
  private dirtyOverflow = false;

  constructor(
    private readonly redis: RedisConnection,
    memory = new MemoryStore(),
  ) {
    this.memory = memory;
    if (redis.configured) {
      this.redisStore = new RedisStore(redis.client);
      redis.onStateChange((up) => (up ? this.resync() : undefined));
    }
  }

  get backend(): 'redis' | 'memory' {
    return this.redisStore && this.redis.isUp ? 'redis' : 'memory';
  }

  async read<T>(op: (store: HotStore) => Promise<T>): Promise<T> {
    if (this.redisStore && this.redis.isUp) {
      try {
        return await op(this.redisStore);
      } catch (error) {
        this.redis.reportFailure(error);
      }
    }
    return op(this.memory);
  }

  /** Like read(), but what lands in memory while Redis is configured is marked for the resync. */
  async write<T>(keys: string[], op: (store: HotStore) => Promise<T>, patterns: string[] = []): Promise<T> {
    if (this.redisStore && this.redis.isUp) {
      try {
        return await op(this.redisStore);
      } catch (error) {
        this.redis.reportFailure(error);
      }
    }
    if (this.redisStore) this.markDirty(keys, patterns);
    return op(this.memory);
  }

  // Deletions go through write(): if Redis fails mid-call they are replayed at
  // the resync like any other outage write. Memory is emptied too, for entries
  // an outage left that no resync has cleared yet (a no-op when write() used it).
  async del(keys: string[]): Promise<number> {
    const deleted = await this.write(keys, (s) => s.del(keys));
    await this.memory.del(keys);
    return deleted;
  }

  async delPattern(pattern: string): Promise<number> {
    const deleted = await this.write([], (s) => s.delPattern(pattern), [pattern]);
    await this.memory.delPattern(pattern);
    return deleted;
  }

  private markDirty(keys: string[], patterns: string[]): void {
    for (const p of patterns) this.dirtyPatterns.add(p);
    if (this.dirtyOverflow) return;
    for (const k of keys) this.dirtyKeys.add(k);
    if (this.dirtyKeys.size > MAX_DIRTY_KEYS) {
      this.dirtyOverflow = true;
      this.dirtyKeys.clear();
    }
  }

  /** Runs before Redis is used again after an outage; a throw keeps it out of use. */
  private async resync(): Promise<void> {
    const store = this.redisStore as RedisStore;
    // Redis still counts as down while this runs, so marks can arrive during
    // a replay: each round takes what is marked and clears it, and another
    // round replays what came in meanwhile.
    for (let round = 0; round < 3 && (this.dirtyOverflow || this.dirtyKeys.size > 0 || this.dirtyPatterns.size > 0); round++) {
      const patterns = this.dirtyOverflow ? cacheKeys.allCachePatterns() : [...this.dirtyPatterns];
      const keys = [...this.dirtyKeys];
      this.dirtyKeys.clear();
      this.dirtyPatterns.clear();
      this.dirtyOverflow = false;
      try {
        for (let i = 0; i < keys.length; i += 500) await store.del(keys.slice(i, i + 500));
        for (const pattern of patterns) await store.delPattern(pattern);
      } catch (error) {
        this.markDirty(keys, patterns);
        throw error;
      }
      this.logger.log({ msg: 'replayed outage invalidations on Redis', keys: keys.length, patterns: patterns.length });
    }
    this.memory.clear();
  }
}
