// Messages on devices/{id}/status: `online` or `offline`, plain
// or as JSON {"status": …}; typically a device's MQTT Last Will. Pure.
import { DEVICE_ID_PATTERN } from '../telemetry/telemetry-rules';

export type DeviceState = 'online' | 'offline';
export type StatusReason = 'message' | 'timeout' | 'will';

const STATUS_TOPIC = /^devices\/([^/]+)\/status$/;

export function isStatusTopic(topic: string): boolean {
  return STATUS_TOPIC.test(topic);
}

/** The device id of a status topic, or undefined when it is not one (or the id is invalid). */
export function statusTopicDevice(topic: string): string | undefined {
  const match = STATUS_TOPIC.exec(topic);
  return match && DEVICE_ID_PATTERN.test(match[1]) ? match[1] : undefined;
}

/** `online` / `offline` (any case, surrounding blanks ignored), or JSON {"status": "online"|"offline"}. */
export function parseStatusPayload(payload: Buffer | string): DeviceState | undefined {
  if (payload.length > 1024) return undefined;
  const text = (typeof payload === 'string' ? payload : payload.toString('utf8')).trim();
  const word = asState(text);
  if (word) return word;
  if (!text.startsWith('{')) return undefined;
  try {
    const json = JSON.parse(text) as unknown;
    if (typeof json === 'object' && json !== null && !Array.isArray(json)) {
      const status = (json as { status?: unknown }).status;
      return typeof status === 'string' ? asState(status.trim()) : undefined;
    }
  } catch {
    // Not JSON: not a status message we understand.
  }
  return undefined;
}

function asState(text: string): DeviceState | undefined {
  const lower = text.toLowerCase();
  return lower === 'online' || lower === 'offline' ? lower : undefined;
}
