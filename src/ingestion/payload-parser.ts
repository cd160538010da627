/**
 * Owns the MQTT ingestion wire format: it turns a topic and
 * raw payload bytes into validated `Sample` rows, or into exactly one reject
 * reason (the `reason` label of `telemetry_messages_rejected_total`).
 *
 * It is pure and synchronous (no I/O, no Nest, no logging) so the MQTT consumer,
 * metrics and tests can share it, and it never throws: a message that reaches
 * the consumer must always end up either stored or counted as rejected.
 *
 * Reason mapping (the rules themselves live in src/telemetry/telemetry-rules.ts):
 * - bad_topic: topic is not exactly `devices/{deviceId}/telemetry` with a valid id.
 * - too_large: more than MAX_PAYLOAD_BYTES, checked before any decoding.
 * - invalid_json: not UTF-8, leading BOM, empty, or not parseable JSON.
 * - invalid_shape: top level not an object/array, empty batch, sample not an
 *   object, keys other than `ts`/`metrics`, `metrics` missing or not an object,
 *   0 or more than MAX_METRICS_PER_SAMPLE metrics.
 * - too_many_samples: batch longer than MAX_SAMPLES_PER_MESSAGE.
 * - invalid_metric: name fails the pattern, or is `__proto__`.
 * - invalid_value: anything but a finite number or a boolean.
 * - invalid_timestamp: see parseIsoTimestamp for the accepted string forms;
 *   numbers must be integer epoch ms; range 2000-01-01Z .. receivedAt + 24h.
 */
import {
  DEVICE_ID_PATTERN,
  DEVICE_ID_RULE,
  MAX_METRICS_PER_SAMPLE,
  MAX_PAYLOAD_BYTES,
  MAX_SAMPLE_FUTURE_MS,
  MAX_SAMPLES_PER_MESSAGE,
  METRIC_NAME_PATTERN,
  MIN_SAMPLE_TS_MS,
  type RejectReason,
} from '../telemetry/telemetry-rules';
import type { Sample } from '../telemetry/sample';

export type ParseResult = { ok: true; deviceId: string; samples: Sample[] } | { ok: false; reason: RejectReason; detail: string };

type Rejection = Extract<ParseResult, { ok: false }>;

const MAX_ECHO_CHARS = 64;

const TOPIC_PREFIX = 'devices/';
const TOPIC_SUFFIX = '/telemetry';
const MIN_TOPIC_LENGTH = TOPIC_PREFIX.length + 1 + TOPIC_SUFFIX.length;
const MAX_TOPIC_LENGTH = TOPIC_PREFIX.length + 64 + TOPIC_SUFFIX.length;
const BAD_TOPIC_DETAIL = `topic must be devices/{deviceId}/telemetry with deviceId that ${DEVICE_ID_RULE}`;

// One shared decoder: decode() without { stream: true } resets its state, also
// after a fatal error, so reuse is safe and saves an allocation per message.
// ignoreBOM keeps a leading U+FEFF in the text instead of silently eating it,
// so we can reject it explicitly: the contract says JSON, and RFC 8259 forbids
// senders from adding a BOM; accepting it would just hide a broken client.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// RFC 3339 profile of ISO 8601 (extended format only), plus date-only and
// minute precision. The zone is mandatory on date-times because a zone-less
// time is ambiguous (device local time?) and would silently shift data.
// Groups: 1 year, 2 month, 3 day, 4 hour, 5 minute, 6 second, 7 fraction, 8 zone.
const ISO_PATTERN = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2}))?$/;
const MAX_ISO_LENGTH = '2000-01-01T00:00:00.000000000+00:00'.length;

/** 'devices/x/telemetry' -> 'x'; anything else (extra levels, wrong prefix/suffix, bad id) -> null. */
export function parseDeviceIdFromTopic(topic: string): string | null {
  if (typeof topic !== 'string') return null;
  const len = topic.length;
  if (len < MIN_TOPIC_LENGTH || len > MAX_TOPIC_LENGTH) return null;
  if (!topic.startsWith(TOPIC_PREFIX) || !topic.endsWith(TOPIC_SUFFIX)) return null;
  const id = topic.slice(TOPIC_PREFIX.length, len - TOPIC_SUFFIX.length);
  // The id pattern excludes '/', '+' and '#', so extra levels and wildcards fail here.
  return DEVICE_ID_PATTERN.test(id) ? id : null;
}

/**
 * Validates one MQTT telemetry message. Never throws, whatever the runtime
 * types of its arguments. `receivedAtMs` is the server receive time: it is the
 * ts of samples without one and the base of the "at most 1 day ahead" limit.
 */
export function parseTelemetry(topic: string, payload: Uint8Array, receivedAtMs: number): ParseResult {
  try {
    return parseUnchecked(topic, payload, receivedAtMs);
  } catch {
    // Unreachable for JSON.parse output and typed-array input; kept so a
    // surprise (an exotic payload object, say) is still counted, not lost.
    return reject('invalid_json', 'payload could not be processed');
  }
}

function parseUnchecked(topic: string, payload: Uint8Array, receivedAtMs: number): ParseResult {
  const deviceId = parseDeviceIdFromTopic(topic);
  if (deviceId === null) return reject('bad_topic', BAD_TOPIC_DETAIL);

  // ArrayBuffer.isView rather than instanceof Uint8Array: it also holds for
  // Buffers and arrays created in another realm (Jest's vm contexts, workers).
  if (!ArrayBuffer.isView(payload)) return reject('invalid_json', 'payload must be bytes');
  const size = payload.byteLength;
  if (size > MAX_PAYLOAD_BYTES) {
    return reject('too_large', `payload is ${size} bytes, limit is ${MAX_PAYLOAD_BYTES}`);
  }
  if (size === 0) return reject('invalid_json', 'payload is empty');

  let text: string;
  try {
    text = UTF8.decode(payload);
  } catch {
    return reject('invalid_json', 'payload is not valid UTF-8');
  }
  if (text.charCodeAt(0) === 0xfeff) {
    return reject('invalid_json', 'payload must not start with a UTF-8 byte order mark');
  }

  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return reject('invalid_json', 'payload is not valid JSON');
  }

  // A broken caller clock must not turn every ts-less sample into NaN.
  const now = Number.isFinite(receivedAtMs) ? Math.floor(receivedAtMs) : Date.now();
  const maxTs = now + MAX_SAMPLE_FUTURE_MS;
  const samples: Sample[] = [];

  if (Array.isArray(doc)) {
    const n = doc.length;
    if (n === 0) return reject('invalid_shape', 'batch must contain at least one sample');
    if (n > MAX_SAMPLES_PER_MESSAGE) {
      return reject('too_many_samples', `batch has ${n} samples, limit is ${MAX_SAMPLES_PER_MESSAGE}`);
    }
    for (let i = 0; i < n; i++) {
      const failure = readSample(doc[i], i, deviceId, now, maxTs, samples);
      if (failure !== null) return failure; // whole batch rejected
    }
  } else if (isObject(doc)) {
    const failure = readSample(doc, -1, deviceId, now, maxTs, samples);
    if (failure !== null) return failure;
  } else {
    return reject('invalid_shape', 'payload must be a sample object or an array of samples');
  }

  return { ok: true, deviceId, samples };
}

/**
 * Appends one Sample per metric of `raw` to `out`, or returns why it cannot.
 * `index` is the position in a batch, -1 for a single-object payload; it is
 * only turned into text on failure, to keep the accept path allocation-light.
 */
function readSample(raw: unknown, index: number, deviceId: string, now: number, maxTs: number, out: Sample[]): Rejection | null {
  if (!isObject(raw)) return reject('invalid_shape', `${at(index)}sample must be an object`);

  // Read fields only through Object.keys (own enumerable keys) so nothing is
  // ever picked up from the prototype chain, and a JSON "__proto__" key (an own
  // property after JSON.parse) is just an unknown key.
  const keys = Object.keys(raw);
  let hasTs = false;
  let hasMetrics = false;
  let tsRaw: unknown;
  let metricsRaw: unknown;
  for (let k = 0; k < keys.length; k++) {
    const key = keys[k];
    if (key === 'ts') {
      hasTs = true;
      tsRaw = raw[key];
    } else if (key === 'metrics') {
      hasMetrics = true;
      metricsRaw = raw[key];
    } else {
      return reject('invalid_shape', `${at(index)}unknown key ${quote(key)}, only "ts" and "metrics" are allowed`);
    }
  }

  if (!hasMetrics) return reject('invalid_shape', `${at(index)}metrics: missing`);
  if (!isObject(metricsRaw)) return reject('invalid_shape', `${at(index)}metrics: must be an object`);
  const metrics = metricsRaw;
  // Integer-like names ("10") come first in Object.keys order; that order is
  // the output order, which only matters for determinism, not meaning.
  const names = Object.keys(metrics);
  const count = names.length;
  if (count === 0) return reject('invalid_shape', `${at(index)}metrics: must have at least one entry`);
  if (count > MAX_METRICS_PER_SAMPLE) {
    return reject('invalid_shape', `${at(index)}metrics: has ${count} entries, limit is ${MAX_METRICS_PER_SAMPLE}`);
  }

  let ts: number;
  if (!hasTs) {
    ts = now;
  } else {
    ts = readTimestamp(tsRaw);
    if (Number.isNaN(ts)) {
      return reject('invalid_timestamp', `${at(index)}ts: must be integer epoch milliseconds or ISO-8601 (YYYY-MM-DD or date-time with Z/±hh:mm)`);
    }
    if (ts < MIN_SAMPLE_TS_MS || ts > maxTs) {
      return reject('invalid_timestamp', `${at(index)}ts: ${ts} is before 2000-01-01 or more than 1 day ahead`);
    }
  }

  for (let m = 0; m < count; m++) {
    const name = names[m];
    // "__proto__" fits the pattern but becomes a prototype setter the moment
    // downstream code builds `{[name]: value}` maps (latest, WebSocket), so it
    // is refused here once instead of guarded everywhere.
    if (name === '__proto__' || !METRIC_NAME_PATTERN.test(name)) {
      return reject('invalid_metric', `${at(index)}metrics.${quote(name)}: name must match [A-Za-z0-9_.-]{1,64}`);
    }
    const v = metrics[name];
    let value: number;
    if (typeof v === 'number') {
      // JSON has no NaN/Infinity literals, but 1e400 parses to Infinity.
      if (!Number.isFinite(v)) {
        return reject('invalid_value', `${at(index)}metrics.${name}: value must be a finite number`);
      }
      value = v;
    } else if (typeof v === 'boolean') {
      value = v ? 1 : 0;
    } else {
      return reject('invalid_value', `${at(index)}metrics.${name}: value must be a finite number or boolean`);
    }
    out.push({ deviceId, metric: name, ts, value });
  }
  return null;
}

/** Epoch ms, or NaN when `raw` is not an accepted timestamp form (range is checked by the caller). */
function readTimestamp(raw: unknown): number {
  if (typeof raw === 'number') return Number.isInteger(raw) ? raw : NaN; // no silent flooring
  if (typeof raw === 'string') return parseIsoTimestamp(raw);
  return NaN; // null, booleans, objects, arrays
}

/**
 * Accepts `YYYY-MM-DD` (UTC midnight) and `YYYY-MM-DDThh:mm[:ss[.f{1,9}]]`
 * followed by `Z` or `±hh:mm`; fractions below 1 ms are truncated. Everything
 * Date.parse would guess at (RFC 2822, no zone, space separator, lowercase
 * t/z, basic format, week dates, overflowing fields like 2024-02-30) is NaN.
 */
function parseIsoTimestamp(s: string): number {
  if (s.length > MAX_ISO_LENGTH) return NaN;
  const m = ISO_PATTERN.exec(s);
  if (m === null) return NaN;

  const year = +m[1];
  const month = +m[2];
  const day = +m[3];
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return NaN;
  if (m[4] === undefined) return Date.UTC(year, month - 1, day);

  const hour = +m[4];
  const minute = +m[5];
  const second = m[6] === undefined ? 0 : +m[6];
  // Leap second 60 and hour 24 are ISO-valid but rare and unrepresentable in
  // epoch ms without a convention; refusing them is safer than guessing.
  if (hour > 23 || minute > 59 || second > 59) return NaN;
  const fraction = m[7];
  const ms = fraction === undefined ? 0 : +(fraction + '00').slice(0, 3);

  const zone = m[8];
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const offHours = +zone.slice(1, 3);
    const offMinutes = +zone.slice(4, 6);
    if (offHours > 23 || offMinutes > 59) return NaN;
    offsetMinutes = (offHours * 60 + offMinutes) * (zone.charCodeAt(0) === 0x2d /* '-' */ ? -1 : 1);
  }
  // Date.UTC maps years 0-99 to 1900-1999; those are below the accepted range
  // either way, so the quirk cannot let a bad timestamp through.
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMinutes * 60_000;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function reject(reason: RejectReason, detail: string): Rejection {
  return { ok: false, reason, detail };
}

/** Location prefix for details: '' for a single sample, '[3].' inside a batch. */
function at(index: number): string {
  return index < 0 ? '' : `[${index}].`;
}

/** Echoes user input into a detail safely: clipped, quoted, control characters escaped. */
function quote(s: string): string {
  return JSON.stringify(s.length > MAX_ECHO_CHARS ? `${s.slice(0, MAX_ECHO_CHARS)}…` : s);
}
