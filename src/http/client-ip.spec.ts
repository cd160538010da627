import type { Socket } from 'node:net';
import { clientIp } from './client-ip';

const request = (headers: Record<string, string | string[]>, remoteAddress = '10.0.0.9') => ({
  headers,
  socket: { remoteAddress } as Socket,
});

describe('clientIp', () => {
  it('uses the socket address and ignores x-forwarded-for unless TRUST_PROXY is set', () => {
    expect(clientIp(request({ 'x-forwarded-for': '203.0.113.7' }), false)).toBe('10.0.0.9');
  });

  it('takes the first x-forwarded-for entry behind a trusted proxy', () => {
    expect(clientIp(request({ 'x-forwarded-for': '203.0.113.7, 10.0.0.1' }), true)).toBe('203.0.113.7');
    expect(clientIp(request({ 'x-forwarded-for': ['198.51.100.2', '10.0.0.1'] }), true)).toBe('198.51.100.2');
  });

  it('falls back to the socket address when a trusted proxy sent no header', () => {
    expect(clientIp(request({}), true)).toBe('10.0.0.9');
  });
});
