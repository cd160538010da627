// Admin routes need the x-api-key header to equal ADMIN_API_KEY; with no key
// configured they are closed. Compared as SHA-256 digests in constant time so
// neither content nor length leaks through timing.
import { type CanActivate, type ExecutionContext, ForbiddenException, Inject, Injectable } from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '../config/app-config';

const digest = (value: string) => createHash('sha256').update(value).digest();

@Injectable()
export class AdminKeyGuard implements CanActivate {
  private readonly expected: Buffer | undefined;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.expected = config.adminApiKey ? digest(config.adminApiKey) : undefined;
  }

  canActivate(context: ExecutionContext): boolean {
    if (!this.expected) throw new ForbiddenException('admin routes are disabled: ADMIN_API_KEY is not set');
    const header = context.switchToHttp().getRequest<{ headers: Record<string, string | string[] | undefined> }>().headers['x-api-key'];
    const given = typeof header === 'string' ? header : '';
    if (!timingSafeEqual(digest(given), this.expected)) throw new ForbiddenException('missing or wrong x-api-key');
    return true;
  }
}
