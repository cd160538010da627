import type { IncomingMessage } from 'node:http';

/**
 * The address a WebSocket client's rate-limit bucket is keyed by: the first
 * x-forwarded-for entry only when TRUST_PROXY says a proxy sets it (otherwise
 * any client could pick its own bucket), else the socket's peer address.
 */
export function clientIp(request: Pick<IncomingMessage, 'headers' | 'socket'>, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = request.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return request.socket.remoteAddress ?? 'unknown';
}
