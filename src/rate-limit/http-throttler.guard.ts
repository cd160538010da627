// The HTTP API's rate limit (docs/api.md HTTP API): @nestjs/throttler's guard, limited
// to the `http` throttler and to /api/* routes (/metrics, /health*, /docs* and
// the page stay unlimited), keyed by the same client IP as the WebSocket
// bucket, and answering 429 with Retry-After in whole seconds. Registered only
// when HTTP_RATE_LIMIT is set (RateLimitModule), so an unlimited API pays
// nothing per request.
import { type ExecutionContext, Inject, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import {
  InjectThrottlerOptions,
  InjectThrottlerStorage,
  ThrottlerException,
  ThrottlerGuard,
  type ThrottlerLimitDetail,
  type ThrottlerModuleOptions,
  type ThrottlerStorage,
} from '@nestjs/throttler';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../config/app-config';
import { clientIp } from '../http/client-ip';
import { HTTP_THROTTLER } from './throttlers';

/** /api and everything below it; matched on the route template when there is one. */
export function isApiPath(path: string): boolean {
  return path === '/api' || path.startsWith('/api/') || path.startsWith('/api?');
}

@Injectable()
export class HttpThrottlerGuard extends ThrottlerGuard {
  constructor(
    @InjectThrottlerOptions() options: ThrottlerModuleOptions,
    @InjectThrottlerStorage() storage: ThrottlerStorage,
    reflector: Reflector,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    super(options, storage, reflector);
  }

  override async onModuleInit(): Promise<void> {
    await super.onModuleInit();
    // The `ws` throttler is the gateway's; requests only draw from `http`.
    this.throttlers = this.throttlers.filter((t) => t.name === HTTP_THROTTLER);
  }

  protected override async shouldSkip(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    return !isApiPath(request.routeOptions?.url ?? request.url);
  }

  protected override async getTracker(request: Record<string, unknown>): Promise<string> {
    return clientIp((request as unknown as FastifyRequest).raw, this.config.trustProxy);
  }

  /** The client IP itself: TokenBucketStorage builds the Redis key from it (no hashing per request). */
  protected override generateKey(_context: ExecutionContext, tracker: string): string {
    return tracker;
  }

  protected override async throwThrottlingException(context: ExecutionContext, detail: ThrottlerLimitDetail): Promise<void> {
    const retryAfterS = Math.max(1, detail.timeToBlockExpire);
    void context.switchToHttp().getResponse<FastifyReply>().header('Retry-After', String(retryAfterS));
    throw new ThrottlerException(`too many requests; retry after ${retryAfterS} s`);
  }
}
