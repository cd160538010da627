// The WebSocket protocol of docs/api.md WebSocket: `{"event": "...", "data": {...}}`
// both ways. Incoming frames are validated here into a typed union; anything
// else becomes a BAD_REQUEST error for the client.
import { z } from 'zod';
import { DEVICE_ID_PATTERN, DEVICE_ID_RULE } from '../telemetry/telemetry-rules';

const deviceId = z.string().refine((v) => DEVICE_ID_PATTERN.test(v), `deviceId ${DEVICE_ID_RULE}`);
const subscribable = z.string().refine((v) => v === '*' || DEVICE_ID_PATTERN.test(v), `deviceId must be "*" or ${DEVICE_ID_RULE.replace('must ', '')}`);

const clientMessage = z.discriminatedUnion('event', [
  z.object({ event: z.literal('subscribe'), data: z.object({ deviceId: subscribable }) }),
  z.object({ event: z.literal('unsubscribe'), data: z.object({ deviceId: subscribable }) }),
  z.object({ event: z.literal('latest'), data: z.object({ deviceId }) }),
  z.object({ event: z.literal('dashboard'), data: z.object({}).optional() }),
]);

export type ClientMessage = z.infer<typeof clientMessage>;
export const CLIENT_EVENTS = ['subscribe', 'unsubscribe', 'latest', 'dashboard'] as const;

export type ParsedClientMessage = { ok: true; message: ClientMessage } | { ok: false; error: string };

export function parseClientMessage(raw: Buffer | string): ParsedClientMessage {
  let json: unknown;
  try {
    json = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch {
    return { ok: false, error: 'message is not valid JSON' };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, error: 'message must be an object {"event": ..., "data": {...}}' };
  }
  const event = (json as { event?: unknown }).event;
  if (typeof event !== 'string' || !(CLIENT_EVENTS as readonly string[]).includes(event)) {
    return { ok: false, error: `unknown event; expected one of ${CLIENT_EVENTS.join(', ')}` };
  }
  const result = clientMessage.safeParse(json);
  if (!result.success) {
    return { ok: false, error: `${event}: ${result.error.issues.map((i) => `${i.path.join('.') || 'data'} ${i.message}`).join('; ')}` };
  }
  return { ok: true, message: result.data };
}

export interface SampleEvent {
  deviceId: string;
  ts: string;
  metrics: Record<string, number>;
}

/** docs/api.md Device status: sent unasked to clients subscribed to the device or to "*". */
export interface StatusEvent {
  deviceId: string;
  status: 'online' | 'offline';
  since: string;
  reason: 'message' | 'timeout' | 'will';
}

export function frame(event: string, data: unknown): string {
  return JSON.stringify({ event, data });
}
