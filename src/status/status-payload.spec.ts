import { parseStatusPayload, statusTopicDevice } from './status-payload';

describe('status topic messages', () => {
  it.each([
    ['offline', 'offline'],
    ['online', 'online'],
    [' Offline\n', 'offline'],
    ['{"status":"offline"}', 'offline'],
    ['{"status":" online ","extra":1}', 'online'],
  ])('%j is %s', (payload, expected) => {
    expect(parseStatusPayload(Buffer.from(payload))).toBe(expected);
  });

  it.each(['', 'down', '1', '{"status":1}', '{"state":"offline"}', '["offline"]', '{broken', `${'x'.repeat(2000)}`])('%j is not a status', (payload) => {
    expect(parseStatusPayload(Buffer.from(payload))).toBeUndefined();
  });

  it('takes the device id from devices/{id}/status only', () => {
    expect(statusTopicDevice('devices/dev-1/status')).toBe('dev-1');
    expect(statusTopicDevice('devices/dev-1/telemetry')).toBeUndefined();
    expect(statusTopicDevice('devices/a b/status')).toBeUndefined();
    expect(statusTopicDevice('devices/dev-1/status/x')).toBeUndefined();
  });
});
