// Property-based checks of the WebSocket message parser: never throws, and
// everything it accepts is one of the four events with valid data.
import fc from 'fast-check';
import { DEVICE_ID_PATTERN } from '../telemetry/telemetry-rules';
import { CLIENT_EVENTS, parseClientMessage } from './ws-protocol';

function check(raw: string | Buffer): void {
  const parsed = parseClientMessage(raw);
  if (!parsed.ok) {
    expect(typeof parsed.error).toBe('string');
    return;
  }
  const { message } = parsed;
  expect(CLIENT_EVENTS).toContain(message.event);
  if (message.event === 'subscribe' || message.event === 'unsubscribe') {
    expect(message.data.deviceId === '*' || DEVICE_ID_PATTERN.test(message.data.deviceId)).toBe(true);
  }
  if (message.event === 'latest') expect(DEVICE_ID_PATTERN.test(message.data.deviceId)).toBe(true);
}

describe('parseClientMessage properties', () => {
  it('never throws on arbitrary text or bytes', () => {
    fc.assert(
      fc.property(fc.string(), (s) => check(s)),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => check(Buffer.from(b))),
      { numRuns: 1000 },
    );
  });

  it('never accepts invalid data for a known event', () => {
    const event = fc.constantFrom('subscribe', 'unsubscribe', 'latest', 'dashboard', 'publish', '');
    fc.assert(
      fc.property(event, fc.jsonValue(), (e, data) => check(JSON.stringify({ event: e, data }))),
      { numRuns: 3000 },
    );
  });
});
