// Validates the environment (docs/api.md Configuration) into one AppConfig. Every problem is
// collected and reported together, one line per variable, so an operator fixes
// a broken deployment in one go.
import { hostname } from 'node:os';
import { z } from 'zod';
import type { AppConfig } from './app-config';
import { DEVICE_ID_PATTERN, DEVICE_ID_RULE } from '../telemetry/telemetry-rules';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
    this.name = 'ConfigError';
  }
}

const PORT_RANGE = { error: 'must be a port number from 0 to 65535' };
const port = z.coerce.number(PORT_RANGE).int(PORT_RANGE).min(0, PORT_RANGE).max(65535, PORT_RANGE);
const positiveInt = z.coerce.number().int().min(1);
const seconds = z.coerce
  .number()
  .int()
  .min(1)
  .max(30 * 24 * 3600);

function urlWithSchemes(schemes: string[]) {
  return z.string().refine(
    (value) => {
      try {
        return schemes.includes(new URL(value).protocol.replace(/:$/, ''));
      } catch {
        return false;
      }
    },
    { message: `must be a URL with scheme ${schemes.map((s) => `${s}://`).join(' or ')}` },
  );
}

const flag = z.enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off']).transform((v) => ['1', 'true', 'yes', 'on'].includes(v));

const hostPortList = z.string().transform((value, ctx) => {
  const nodes = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(entry);
      return match ? { host: match[1].replace(/^\[|\]$/g, ''), port: Number(match[2]) } : null;
    });
  if (nodes.length === 0 || nodes.some((n) => n === null || n.port < 1 || n.port > 65535)) {
    ctx.addIssue({ code: 'custom', message: 'must be host:port[,host:port…]' });
    return z.NEVER;
  }
  return nodes as Array<{ host: string; port: number }>;
});

const deviceTokens = z.string().transform((value, ctx) => {
  const map = new Map<string, string>();
  for (const entry of value
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const colon = entry.lastIndexOf(':');
    const id = entry.slice(0, colon);
    const token = entry.slice(colon + 1);
    // Device ids may contain ':' themselves, so the token is what follows the last one.
    if (colon <= 0 || !DEVICE_ID_PATTERN.test(id) || token.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'must be deviceId:token[,deviceId:token…]' });
      return z.NEVER;
    }
    map.set(id, token);
  }
  if (map.size === 0) {
    ctx.addIssue({ code: 'custom', message: 'must name at least one deviceId:token' });
    return z.NEVER;
  }
  return map as ReadonlyMap<string, string>;
});

const envSchema = z.object({
  PORT: port.default(3000),
  DATABASE_URL: urlWithSchemes(['postgres', 'postgresql']).optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  REDIS_URL: urlWithSchemes(['redis', 'rediss']).optional(),
  REDIS_CLUSTER_NODES: hostPortList.optional(),
  MQTT_URL: urlWithSchemes(['mqtt', 'mqtts', 'tcp', 'tls', 'ws', 'wss']).optional(),
  MQTT_PORT: port.default(1883),
  // Seconds of silence before the client pings the broker; no answer within half as much again = link lost.
  MQTT_KEEPALIVE_S: positiveInt.max(65_535).default(30),
  ADMIN_API_KEY: z.string().min(1).optional(),
  WS_TOKEN: z.string().min(1).optional(),
  DEVICE_TOKENS: deviceTokens.optional(),
  CACHE_TTL_LATEST_S: seconds.default(10),
  CACHE_TTL_DASHBOARD_S: seconds.default(300),
  CACHE_TTL_DEVICE_STATS_S: seconds.default(900),
  CACHE_TTL_HOURLY_S: seconds.default(600),
  WS_RATE_LIMIT: positiveInt.default(100),
  WS_RATE_WINDOW_S: seconds.default(60),
  // Unset: the HTTP API is not limited. The window alone changes nothing.
  HTTP_RATE_LIMIT: positiveInt.optional(),
  HTTP_RATE_WINDOW_S: seconds.optional(),
  INSTANCE_ID: z.string().regex(DEVICE_ID_PATTERN, DEVICE_ID_RULE).optional(),
  TRUST_PROXY: flag.optional(),
  CORS_ORIGINS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean),
    )
    .refine((list) => list.every((o) => o === '*' || /^https?:\/\/[^/\s]+$/.test(o)), 'must be origins like https://grafana.example.com, comma-separated')
    .optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  INGEST_MAX_BATCH_SAMPLES: positiveInt.max(100_000).default(5000),
  // 10 ms: at full load batches fill by size anyway; at light load it bounds live latency.
  INGEST_FLUSH_INTERVAL_MS: positiveInt.max(10_000).default(10),
  INGEST_MAX_PENDING_MESSAGES: positiveInt.default(20_000),
  // Not in the contract. Capped at 100 years so the cutoff is always a valid date.
  RETENTION_DAYS: positiveInt.max(36_500).optional(),
  ALARM_WEBHOOK_SECRET: z.string().min(1).optional(),
  DEVICE_OFFLINE_AFTER_S: seconds.default(300),
});

/** Every variable the service reads. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

/** Variables whose value may hold a secret (a password in a URL, a token): never echoed in a message. */
const MAY_HOLD_SECRET = /URL|KEY|TOKEN|SECRET|PASSWORD/;

/** `PORT (given "abc")` for a harmless value, so the operator sees what the service was given. */
function named(variable: string, env: Record<string, string>): string {
  const value = env[variable];
  if (value === undefined || MAY_HOLD_SECRET.test(variable)) return variable;
  const shown = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return `${variable} (given ${JSON.stringify(shown)})`;
}

/** Empty strings count as unset: `FOO=` in a compose file means "not configured". */
function presentOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(envSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') out[key] = value;
  }
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const present = presentOnly(env);
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    // Zod messages never include the offending value; named() quotes only values that cannot be secrets.
    throw new ConfigError(parsed.error.issues.map((issue) => `invalid environment variable ${named(issue.path.join('.'), present)}: ${issue.message}`));
  }
  const e = parsed.data;
  const config: AppConfig = {
    port: e.PORT,
    instanceId: e.INSTANCE_ID ?? `${hostname()}-${e.PORT}`,
    logLevel: e.LOG_LEVEL,
    trustProxy: e.TRUST_PROXY ?? false,
    corsOrigins: e.CORS_ORIGINS ?? [],
    database: { url: e.DATABASE_URL, dataDir: e.DATA_DIR },
    storage: { retentionDays: e.RETENTION_DAYS },
    redis: { url: e.REDIS_URL, clusterNodes: e.REDIS_CLUSTER_NODES },
    mqtt: { url: e.MQTT_URL, embeddedPort: e.MQTT_PORT, deviceTokens: e.DEVICE_TOKENS, keepaliveS: e.MQTT_KEEPALIVE_S },
    adminApiKey: e.ADMIN_API_KEY,
    wsToken: e.WS_TOKEN,
    cacheTtl: {
      latestS: e.CACHE_TTL_LATEST_S,
      dashboardS: e.CACHE_TTL_DASHBOARD_S,
      deviceStatsS: e.CACHE_TTL_DEVICE_STATS_S,
      hourlyS: e.CACHE_TTL_HOURLY_S,
    },
    wsRateLimit: { capacity: e.WS_RATE_LIMIT, windowS: e.WS_RATE_WINDOW_S },
    httpRateLimit: e.HTTP_RATE_LIMIT === undefined ? undefined : { capacity: e.HTTP_RATE_LIMIT, windowS: e.HTTP_RATE_WINDOW_S ?? 60 },
    alarms: { webhookSecret: e.ALARM_WEBHOOK_SECRET },
    ingest: {
      maxBatchSamples: e.INGEST_MAX_BATCH_SAMPLES,
      flushIntervalMs: e.INGEST_FLUSH_INTERVAL_MS,
      maxPendingMessages: e.INGEST_MAX_PENDING_MESSAGES,
    },
    deviceOfflineAfterS: e.DEVICE_OFFLINE_AFTER_S,
  };
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !(value instanceof Map)) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
