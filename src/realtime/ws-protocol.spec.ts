// docs/api.md WebSocket: the four client events and what counts as malformed. The
// gateway turns every { ok: false } into error {code: "BAD_REQUEST", message}.
import { CLIENT_EVENTS, frame, parseClientMessage } from './ws-protocol';

const msg = (value: unknown) => JSON.stringify(value);

function rejected(raw: string | Buffer): string {
  const result = parseClientMessage(raw);
  if (result.ok) throw new Error(`expected ${String(raw)} to be rejected, got ${JSON.stringify(result.message)}`);
  expect(typeof result.error).toBe('string');
  expect(result.error.length).toBeGreaterThan(0);
  expect(result.error.length).toBeLessThan(500);
  return result.error;
}

describe('parseClientMessage', () => {
  it('knows exactly the four events of the contract', () => {
    expect([...CLIENT_EVENTS].sort()).toEqual(['dashboard', 'latest', 'subscribe', 'unsubscribe']);
  });

  it.each([
    [{ event: 'subscribe', data: { deviceId: 'dev-1' } }],
    [{ event: 'subscribe', data: { deviceId: '*' } }],
    [{ event: 'subscribe', data: { deviceId: 'A.b_c:d-9' } }],
    [{ event: 'subscribe', data: { deviceId: 'x'.repeat(64) } }],
    [{ event: 'unsubscribe', data: { deviceId: 'dev-1' } }],
    [{ event: 'unsubscribe', data: { deviceId: '*' } }],
    [{ event: 'latest', data: { deviceId: 'dev-1' } }],
    [{ event: 'dashboard', data: {} }],
  ])('accepts %j', (value) => {
    const result = parseClientMessage(msg(value));
    expect(result).toEqual({ ok: true, message: value });
  });

  it('accepts dashboard without data, and Buffers as well as strings', () => {
    expect(parseClientMessage(msg({ event: 'dashboard' }))).toEqual({ ok: true, message: { event: 'dashboard' } });
    const fromBuffer = parseClientMessage(Buffer.from(msg({ event: 'latest', data: { deviceId: 'dev-2' } })));
    expect(fromBuffer).toEqual({ ok: true, message: { event: 'latest', data: { deviceId: 'dev-2' } } });
  });

  it.each(['', '{', '{"event":"subscribe",', 'subscribe dev-1', "{'event':'dashboard'}", Buffer.from([0xff, 0xfe, 0x00])])('rejects invalid JSON %j', (raw) => {
    expect(rejected(raw)).toMatch(/JSON/);
  });

  it.each(['42', '"dashboard"', 'null', 'true', '[]', msg([{ event: 'dashboard', data: {} }])])('rejects the non-object %s', (raw) => {
    expect(rejected(raw)).toMatch(/object/i);
  });

  it.each([
    [{ event: 'publish', data: { deviceId: 'dev-1' } }],
    [{ event: 'SUBSCRIBE', data: { deviceId: 'dev-1' } }],
    [{ event: '', data: {} }],
    [{ data: { deviceId: 'dev-1' } }],
    [{ event: 7, data: {} }],
    [{ event: null, data: {} }],
    [{ event: ['subscribe'], data: { deviceId: 'dev-1' } }],
    [{ event: '__proto__', data: {} }],
    [{ event: 'constructor', data: {} }],
  ])('rejects the unknown event in %j', (value) => {
    expect(rejected(msg(value))).toMatch(/unknown event/);
  });

  it.each([
    [{ event: 'subscribe' }],
    [{ event: 'subscribe', data: {} }],
    [{ event: 'unsubscribe', data: {} }],
    [{ event: 'latest', data: {} }],
    [{ event: 'latest', data: { device: 'dev-1' } }],
  ])('rejects a missing deviceId in %j', (value) => {
    expect(rejected(msg(value))).toMatch(new RegExp(`^${value.event}:`));
  });

  it.each([
    ['subscribe', ''],
    ['subscribe', 'has space'],
    ['subscribe', 'a/b'],
    ['subscribe', 'dev#1'],
    ['subscribe', 'x'.repeat(65)],
    ['subscribe', '**'],
    ['subscribe', 'dev-*'],
    ['unsubscribe', 'devices/+/telemetry'],
    ['latest', 'ünicode'],
    ['latest', 'x'.repeat(65)],
  ])('rejects %s with the invalid deviceId %j', (event, deviceId) => {
    expect(rejected(msg({ event, data: { deviceId } }))).toMatch(/deviceId/);
  });

  it('does not allow "*" for latest (only subscribe/unsubscribe take it)', () => {
    expect(rejected(msg({ event: 'latest', data: { deviceId: '*' } }))).toMatch(/deviceId/);
  });

  it.each([
    [{ event: 'subscribe', data: 'dev-1' }],
    [{ event: 'subscribe', data: ['dev-1'] }],
    [{ event: 'subscribe', data: null }],
    [{ event: 'subscribe', data: 5 }],
    [{ event: 'subscribe', data: { deviceId: 5 } }],
    [{ event: 'subscribe', data: { deviceId: null } }],
    [{ event: 'subscribe', data: { deviceId: true } }],
    [{ event: 'unsubscribe', data: { deviceId: ['dev-1'] } }],
    [{ event: 'latest', data: { deviceId: { id: 'dev-1' } } }],
    [{ event: 'latest', data: true }],
    [{ event: 'dashboard', data: 'now' }],
    [{ event: 'dashboard', data: [] }],
    [{ event: 'dashboard', data: 1 }],
  ])('rejects data of the wrong type in %j', (value) => {
    expect(rejected(msg(value))).toMatch(new RegExp(`^${value.event}:`));
  });
});

describe('frame', () => {
  it('is the {"event","data"} envelope of docs/api.md WebSocket', () => {
    const text = frame('error', { code: 'BAD_REQUEST', message: 'message is not valid JSON' });
    expect(JSON.parse(text)).toEqual({ event: 'error', data: { code: 'BAD_REQUEST', message: 'message is not valid JSON' } });
  });
});
