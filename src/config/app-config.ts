// The typed, frozen configuration object every module receives by injection.
// Built once at start-up from the environment by loadConfig().
export const APP_CONFIG = Symbol('APP_CONFIG');

export interface CacheTtls {
  latestS: number;
  dashboardS: number;
  deviceStatsS: number;
  hourlyS: number;
}

export interface AppConfig {
  port: number;
  instanceId: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  trustProxy: boolean;
  /** Origins allowed to call the API from a browser (CORS); empty = same origin only. */
  corsOrigins: readonly string[];
  database: { url: string | undefined; dataDir: string };
  storage: StorageTuning;
  redis: { url: string | undefined; clusterNodes: Array<{ host: string; port: number }> | undefined };
  mqtt: { url: string | undefined; embeddedPort: number; deviceTokens: ReadonlyMap<string, string> | undefined };
  adminApiKey: string | undefined;
  wsToken: string | undefined;
  cacheTtl: CacheTtls;
  wsRateLimit: RateLimit;
  /** Token bucket per client IP for /api/*; undefined = the HTTP API is not limited. */
  httpRateLimit: RateLimit | undefined;
  ingest: IngestTuning;
  /** webhookSecret: HMAC-SHA256 key signing alarm webhooks; unset = unsigned. */
  alarms: { webhookSecret: string | undefined };
}

/** A token bucket: `capacity` tokens, refilled continuously, fully in `windowS` seconds. */
export interface RateLimit {
  capacity: number;
  windowS: number;
}

/** Raw samples older than retentionDays are dropped a whole day at a time; unset = kept forever. */
export interface StorageTuning {
  retentionDays: number | undefined;
}

/** Batching and back-pressure knobs; not in the contract, defaults suit 2 cores. */
export interface IngestTuning {
  maxBatchSamples: number;
  flushIntervalMs: number;
  maxPendingMessages: number;
}

/** Every value that must never be written to a log line verbatim. */
export function secretsOf(config: AppConfig): string[] {
  const secrets: string[] = [];
  for (const url of [config.database.url, config.redis.url, config.mqtt.url]) {
    if (!url) continue;
    try {
      const parsed = new URL(url);
      if (parsed.password) secrets.push(decodeURIComponent(parsed.password), parsed.password);
    } catch {
      // loadConfig already rejected malformed URLs; nothing to mask here.
    }
  }
  if (config.adminApiKey) secrets.push(config.adminApiKey);
  if (config.wsToken) secrets.push(config.wsToken);
  if (config.alarms.webhookSecret) secrets.push(config.alarms.webhookSecret);
  for (const token of config.mqtt.deviceTokens?.values() ?? []) secrets.push(token);
  return [...new Set(secrets.filter((s) => s.length > 0))];
}
