// The two @nestjs/throttler throttlers (docs/api.md Configuration, HTTP API, WebSocket): `ws` for every
// WebSocket message, always on; `http` for /api/* requests, only when
// HTTP_RATE_LIMIT is set. Both are token buckets: `limit` is the capacity and
// `ttl` the milliseconds to refill it fully (see TokenBucketStorage).
import type { ThrottlerModuleOptions, ThrottlerOptions } from '@nestjs/throttler';
import type { AppConfig } from '../config/app-config';

export const WS_THROTTLER = 'ws';
export const HTTP_THROTTLER = 'http';

export function throttlersFor(config: AppConfig): ThrottlerOptions[] {
  const throttlers: ThrottlerOptions[] = [{ name: WS_THROTTLER, limit: config.wsRateLimit.capacity, ttl: config.wsRateLimit.windowS * 1000 }];
  if (config.httpRateLimit) {
    // setHeaders off: the guard's own headers would be suffixed with the
    // throttler's name (Retry-After-http); HttpThrottlerGuard sets a plain
    // Retry-After on a 429 instead.
    throttlers.push({
      name: HTTP_THROTTLER,
      limit: config.httpRateLimit.capacity,
      ttl: config.httpRateLimit.windowS * 1000,
      setHeaders: false,
    });
  }
  return throttlers;
}

/** A named throttler's capacity and refill window, for callers outside the guard (the WebSocket gateway). */
export function throttlerLimit(options: ThrottlerModuleOptions, name: string): { limit: number; ttlMs: number } {
  const throttler = (Array.isArray(options) ? options : options.throttlers).find((t) => t.name === name);
  if (!throttler || typeof throttler.limit !== 'number' || typeof throttler.ttl !== 'number') {
    throw new Error(`the "${name}" throttler needs a fixed limit and ttl`);
  }
  return { limit: throttler.limit, ttlMs: throttler.ttl };
}
