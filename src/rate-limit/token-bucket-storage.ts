// @nestjs/throttler's storage, backed by the project's token bucket
// (./token-bucket.ts) instead of the stock fixed-window counter:
// one atomic Lua script per request in Redis, shared by every instance, and a
// per-instance memory bucket while Redis is down or not configured. The HTTP
// guard and the WebSocket gateway both take their tokens here.
import type { ThrottlerStorage } from '@nestjs/throttler';
import type { Cluster, Redis } from 'ioredis';
import { rateLimitKey } from '../redis/redis-names';
import { type MemoryBucket, TAKE_LUA, takeFromBucket } from './token-bucket';
import type { RedisConnection } from '../redis/redis-connection';
import { WS_THROTTLER } from './throttlers';

/** The package's record type, which its index does not export. */
type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/**
 * The throttler's record, read as a token bucket: `totalHits` is the tokens in
 * use (capacity minus whole tokens left; capacity + 1 when refused),
 * `timeToExpire` the seconds until the bucket is full again,
 * `timeToBlockExpire` the seconds until the next token (rounded up, for
 * Retry-After), and `retryAfterMs` the same in milliseconds. A refusal costs
 * no token and blocks no longer than that: `blockDuration` is not used.
 */
export interface TokenBucketRecord extends ThrottlerStorageRecord {
  retryAfterMs: number;
}

/** Buckets kept in memory before full ones are evicted. */
const MAX_MEMORY_BUCKETS = 100_000;

interface StoredBucket extends MemoryBucket {
  capacity: number;
  windowMs: number;
}

type TakeReply = [allowed: number, retryAfterMs: number, tokensLeft: number, msUntilFull: number];
type BucketClient = (Redis | Cluster) & { takeToken(key: string, capacity: number, windowMs: number): Promise<TakeReply> };

export class TokenBucketStorage implements ThrottlerStorage {
  private readonly memory = new Map<string, StoredBucket>();
  private scriptDefined = false;

  constructor(private readonly redis: RedisConnection) {}

  /**
   * The Redis key of a client's bucket for one throttler. WebSocket buckets
   * keep the name they had before HTTP was limited (instances of both
   * versions share them during a rolling upgrade); the {tracker} hash tag
   * keeps each bucket in one Redis Cluster slot.
   */
  static key(throttlerName: string, tracker: string): string {
    return rateLimitKey(tracker, throttlerName === WS_THROTTLER ? undefined : throttlerName);
  }

  /**
   * Takes one token from `tracker`'s bucket of `limit` tokens refilling fully
   * in `ttl` ms. `tracker` is the client (its IP): the guards pass it as the key.
   */
  async increment(tracker: string, ttl: number, limit: number, _blockDuration: number, throttlerName: string): Promise<TokenBucketRecord> {
    const key = TokenBucketStorage.key(throttlerName, tracker);
    if (this.redis.configured && this.redis.isUp) {
      try {
        const [allowed, retryAfterMs, tokensLeft, msUntilFull] = await this.client().takeToken(key, limit, ttl);
        return toRecord(allowed === 1, retryAfterMs, tokensLeft, msUntilFull, limit);
      } catch (error) {
        // Marks Redis down for everybody; the PING probe brings it back.
        this.redis.reportFailure(error);
      }
    }
    return this.takeFromMemory(key, limit, ttl);
  }

  private client(): BucketClient {
    const client = this.redis.client as BucketClient;
    if (!this.scriptDefined) {
      client.defineCommand('takeToken', { numberOfKeys: 1, lua: TAKE_LUA });
      this.scriptDefined = true;
    }
    return client;
  }

  private takeFromMemory(key: string, capacity: number, windowMs: number): TokenBucketRecord {
    const now = Date.now();
    const { bucket, result } = takeFromBucket(this.memory.get(key), capacity, windowMs, now);
    this.memory.set(key, { ...bucket, capacity, windowMs });
    if (this.memory.size > MAX_MEMORY_BUCKETS) this.evictFull(now);
    const tokensLeft = Math.floor(bucket.tokens + 1e-9);
    const msUntilFull = Math.ceil(((capacity - bucket.tokens) * windowMs) / capacity);
    return toRecord(result.allowed, result.retryAfterMs, tokensLeft, msUntilFull, capacity);
  }

  /** Buckets that have refilled completely carry no state worth keeping. */
  private evictFull(now: number): void {
    for (const [key, b] of this.memory) {
      if (b.tokens + ((now - b.ts) * b.capacity) / b.windowMs >= b.capacity) this.memory.delete(key);
    }
  }
}

function toRecord(allowed: boolean, retryAfterMs: number, tokensLeft: number, msUntilFull: number, limit: number): TokenBucketRecord {
  return {
    totalHits: allowed ? limit - tokensLeft : limit + 1,
    timeToExpire: Math.ceil(msUntilFull / 1000),
    isBlocked: !allowed,
    timeToBlockExpire: allowed ? 0 : Math.ceil(retryAfterMs / 1000),
    retryAfterMs,
  };
}
