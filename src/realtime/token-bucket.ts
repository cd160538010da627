// Token-bucket rate limit for WebSocket clients, shared by every instance
// through Redis: one atomic Lua script per message, timed by Redis TIME so
// instances' clocks do not matter. While Redis is down each instance keeps
// its own buckets in memory (the limit then applies per instance).
import { Inject, Injectable } from '@nestjs/common';
import type Redis from 'ioredis';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { rateLimitKey } from '../redis/redis-names';
import { RedisConnection } from '../redis/redis-connection';

export interface TakeResult {
  allowed: boolean;
  retryAfterMs: number;
}

// KEYS[1] bucket; ARGV[1] capacity; ARGV[2] window ms (time to refill fully).
// Tokens are stored as a float; only integers are returned (Redis truncates floats).
const TAKE_LUA = `
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then tokens = capacity; ts = now end
local elapsed = now - ts
if elapsed < 0 then elapsed = 0 end
tokens = math.min(capacity, tokens + elapsed * capacity / window)
local allowed = 0
local retry = 0
if tokens >= 1 - 1e-9 then
  tokens = math.max(0, tokens - 1)
  allowed = 1
else
  retry = math.ceil((1 - tokens) * window / capacity)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], window * 2)
return {allowed, retry}`;

interface MemoryBucket {
  tokens: number;
  ts: number;
}

export function takeFromBucket(bucket: MemoryBucket | undefined, capacity: number, windowMs: number, now: number): { bucket: MemoryBucket; result: TakeResult } {
  const b = bucket ?? { tokens: capacity, ts: now };
  const elapsed = Math.max(0, now - b.ts);
  let tokens = Math.min(capacity, b.tokens + (elapsed * capacity) / windowMs);
  let result: TakeResult;
  // The epsilon absorbs float error: a client retrying exactly after retryAfterMs must pass.
  if (tokens >= 1 - 1e-9) {
    tokens = Math.max(0, tokens - 1);
    result = { allowed: true, retryAfterMs: 0 };
  } else {
    result = { allowed: false, retryAfterMs: Math.ceil(((1 - tokens) * windowMs) / capacity) };
  }
  return { bucket: { tokens, ts: now }, result };
}

@Injectable()
export class TokenBucketLimiter {
  private readonly memory = new Map<string, MemoryBucket>();
  private readonly capacity: number;
  private readonly windowMs: number;
  private scriptDefined = false;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly redis: RedisConnection,
  ) {
    this.capacity = config.wsRateLimit.capacity;
    this.windowMs = config.wsRateLimit.windowS * 1000;
  }

  static key(clientKey: string): string {
    return rateLimitKey(clientKey);
  }

  /** Takes one token for this client if there is one. */
  async take(clientKey: string): Promise<TakeResult> {
    if (this.redis.configured && this.redis.isUp) {
      try {
        const client = this.redis.client as Redis & { takeToken(key: string, capacity: number, windowMs: number): Promise<[number, number]> };
        if (!this.scriptDefined) {
          client.defineCommand('takeToken', { numberOfKeys: 1, lua: TAKE_LUA });
          this.scriptDefined = true;
        }
        const [allowed, retry] = await client.takeToken(TokenBucketLimiter.key(clientKey), this.capacity, this.windowMs);
        return { allowed: allowed === 1, retryAfterMs: retry };
      } catch (error) {
        this.redis.reportFailure(error);
      }
    }
    return this.takeFromMemory(clientKey);
  }

  private takeFromMemory(clientKey: string): TakeResult {
    const now = Date.now();
    const { bucket, result } = takeFromBucket(this.memory.get(clientKey), this.capacity, this.windowMs, now);
    this.memory.set(clientKey, bucket);
    if (this.memory.size > 100_000) this.evictFull(now);
    return result;
  }

  /** Buckets that have refilled completely carry no state worth keeping. */
  private evictFull(now: number): void {
    for (const [key, b] of this.memory) {
      if (b.tokens + ((now - b.ts) * this.capacity) / this.windowMs >= this.capacity) this.memory.delete(key);
    }
  }
}
