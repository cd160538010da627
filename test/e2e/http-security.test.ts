// HTTP hardening: security headers on every response, CORS only for listed
// origins, bounded request bodies answered in the contract's error shape.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startTestApp, type TestApp } from '../support/test-app';

describe('HTTP security', () => {
  let app: TestApp;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-http-sec-'));
    app = await startTestApp({ DATA_DIR: dataDir, MQTT_PORT: '0', LOG_LEVEL: 'warn', ADMIN_API_KEY: 'k', CORS_ORIGINS: 'https://grafana.example.com' });
  });
  afterAll(async () => {
    await app?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it.each(['/', '/api/devices', '/health', '/metrics', '/api/devices/nope/latest'])('sends security headers on %s', async (url) => {
    const res = await fetch(app.baseUrl + url);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(res.headers.get('content-security-policy')).not.toContain('upgrade-insecure-requests');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
  });

  it('allows cross-origin calls only from the configured origins', async () => {
    const allowed = await fetch(`${app.baseUrl}/api/devices`, { headers: { origin: 'https://grafana.example.com' } });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://grafana.example.com');
    const other = await fetch(`${app.baseUrl}/api/devices`, { headers: { origin: 'https://evil.example.com' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses a request body over 64 KiB with 413 in the contract error shape', async () => {
    const res = await fetch(`${app.baseUrl}/api/cache/clear`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'k' },
      body: JSON.stringify({ pattern: `telemetry:${'x'.repeat(70 * 1024)}` }),
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as { statusCode: number; message: unknown };
    expect(body.statusCode).toBe(413);
    expect(typeof body.message).toBe('string');
  });

  it('answers malformed JSON bodies with 400 in the contract error shape', async () => {
    const res = await fetch(`${app.baseUrl}/api/cache/clear`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'k' },
      body: '{"pattern":',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ statusCode: 400, message: expect.any(String) });
  });
});
