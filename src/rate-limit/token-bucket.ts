// The token bucket behind every rate limit (WebSocket messages and, when
// configured, HTTP API requests): capacity tokens that refill continuously,
// one taken per request, a refusal costing none. The same step exists twice:
// as one atomic Lua script per request in Redis, timed by Redis TIME so
// instances' clocks do not matter, and as a pure function for the per-instance
// memory fallback while Redis is down. src/rate-limit/token-bucket-storage.ts
// runs them behind @nestjs/throttler's storage interface.

export interface TakeResult {
  allowed: boolean;
  retryAfterMs: number;
}

export interface MemoryBucket {
  tokens: number;
  ts: number;
}

// KEYS[1] bucket; ARGV[1] capacity; ARGV[2] window ms (time to refill fully).
// Returns {allowed, retryAfterMs, whole tokens left, ms until full}. Tokens are
// stored as a float; only integers are returned (Redis truncates floats).
export const TAKE_LUA = `
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
return {allowed, retry, math.floor(tokens + 1e-9), math.ceil((capacity - tokens) * window / capacity)}`;

export function takeFromBucket(
  bucket: MemoryBucket | undefined,
  capacity: number,
  windowMs: number,
  now: number,
): { bucket: MemoryBucket; result: TakeResult } {
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
