// The platform-ws adapter with what the gateway cannot set statically:
// WS_TOKEN checked at the handshake (401 before any WebSocket exists), a
// bounded frame size, and client IPs. Message routing is the gateway's own
// (it must answer unknown events and rate-limit before parsing), so the
// adapter's parser hands nothing to Nest's @SubscribeMessage dispatch.
import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { INestApplicationContext } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import type { AppConfig } from '../config/app-config';

/** Largest client message answered (BAD_REQUEST beyond); every valid one is tiny. */
export const MAX_CLIENT_MESSAGE_BYTES = 16 * 1024;
/** Frames beyond this are not even read: ws closes the connection with 1009. */
export const MAX_CLIENT_FRAME_BYTES = 256 * 1024;

const digest = (value: string) => createHash('sha256').update(value).digest();

export class AppWsAdapter extends WsAdapter {
  private readonly token: Buffer | undefined;

  constructor(app: INestApplicationContext, config: AppConfig) {
    super(app, { messageParser: () => undefined });
    this.token = config.wsToken ? digest(config.wsToken) : undefined;
  }

  override create(port: number, options: Record<string, unknown> & { path?: string } = {}): unknown {
    return super.create(port, {
      ...options,
      maxPayload: MAX_CLIENT_FRAME_BYTES,
      verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
        if (!this.token) return done(true);
        const given = new URL(info.req.url ?? '/', 'http://localhost').searchParams.get('token') ?? '';
        if (timingSafeEqual(digest(given), this.token)) return done(true);
        done(false, 401, 'Unauthorized');
      },
    });
  }
}
