// What a device may send and how it is named: identifier patterns, payload
// limits, MQTT topics and reject reasons. Pure data shared by ingestion,
// storage, the query API, realtime, configuration, the embedded broker and
// the simulator, so every one of them checks the same rule with the same words.

/** `deviceId` in topics, routes and WebSocket messages. */
export const DEVICE_ID_PATTERN: RegExp = /^[A-Za-z0-9_.:-]{1,64}$/;
export const DEVICE_ID_RULE = 'must match [A-Za-z0-9_.:-]{1,64}';

/** Metric names. Neither pattern allows ',' — the batch write joins columns with it. */
export const METRIC_NAME_PATTERN: RegExp = /^[A-Za-z0-9_.-]{1,64}$/;
export const METRIC_NAME_RULE = 'must match [A-Za-z0-9_.-]{1,64}';

export const MAX_PAYLOAD_BYTES = 65536;
export const MAX_SAMPLES_PER_MESSAGE = 1000;
export const MAX_METRICS_PER_SAMPLE = 100;
/** Oldest accepted sample time (inclusive): 2000-01-01T00:00:00Z. */
export const MIN_SAMPLE_TS_MS = Date.UTC(2000, 0, 1);
/** How far past the receive time a sample may lie (inclusive). */
export const MAX_SAMPLE_FUTURE_MS = 24 * 60 * 60 * 1000;

/** Where device `id` publishes its telemetry. */
export const telemetryTopic = (deviceId: string) => `devices/${deviceId}/telemetry`;
export const TELEMETRY_TOPIC_FILTER = telemetryTopic('+');
/** Several instances share the work through one MQTT shared-subscription group. */
export const SHARED_GROUP = 'telemetry-hub';
export const SHARED_SUBSCRIPTION = `$share/${SHARED_GROUP}/${TELEMETRY_TOPIC_FILTER}`;

/** The `reason` label of telemetry_messages_rejected_total. */
export const REJECT_REASONS = [
  'bad_topic',
  'too_large',
  'invalid_json',
  'invalid_shape',
  'too_many_samples',
  'invalid_metric',
  'invalid_value',
  'invalid_timestamp',
] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];
