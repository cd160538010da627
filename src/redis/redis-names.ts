// Every name the service uses in Redis: cache keys, the fan-out channel and
// rate-limit buckets, all under the fixed `telemetry:` prefix. A device id
// sits in a {hash tag} so all of one device's keys share a Redis Cluster slot.
export const KEY_PREFIX = 'telemetry:';

export const cacheKeys = {
  latest: (deviceId: string) => `${KEY_PREFIX}latest:{${deviceId}}`,
  stats: (deviceId: string) => `${KEY_PREFIX}stats:{${deviceId}}`,
  hourly: (deviceId: string, metric: string, fromMs: number, toMs: number) => `${KEY_PREFIX}hourly:{${deviceId}}:${metric}:${fromMs}:${toMs}`,
  /** `rest` identifies the query (interval, zone, aggregates, metrics, range). */
  series: (deviceId: string, rest: string) => `${KEY_PREFIX}series:{${deviceId}}:${rest}`,
  dashboard: () => `${KEY_PREFIX}dashboard`,
  /** Patterns covering everything cached about one device. */
  devicePatterns: (deviceId: string) => [`${KEY_PREFIX}hourly:{${escapeGlob(deviceId)}}:*`, `${KEY_PREFIX}series:{${escapeGlob(deviceId)}}:*`],
  deviceKeys: (deviceId: string) => [cacheKeys.latest(deviceId), cacheKeys.stats(deviceId)],
  /** The cache classes (series answers count as hourly); what POST /api/cache/clear empties by default. */
  allCachePatterns: () => [`${KEY_PREFIX}latest:*`, `${KEY_PREFIX}stats:*`, `${KEY_PREFIX}hourly:*`, `${KEY_PREFIX}series:*`, `${KEY_PREFIX}dashboard`],
  /** Everything the service keeps in Redis (what /api/cache/stats counts). */
  everything: () => `${KEY_PREFIX}*`,
};

/**
 * Pub/sub channel that carries committed samples between instances. Redis
 * pub/sub ignores database numbers, so deployments that share one server on
 * different databases get a channel each (database 0 keeps the plain name).
 */
export const fanoutChannel = (database = 0) => (database === 0 ? `${KEY_PREFIX}fanout` : `${KEY_PREFIX}fanout:db${database}`);

/** A client's token bucket, shared by every instance; WebSocket buckets have no scope. */
export const rateLimitKey = (clientKey: string, scope?: string) =>
  scope ? `${KEY_PREFIX}ratelimit:${scope}:{${clientKey}}` : `${KEY_PREFIX}ratelimit:{${clientKey}}`;

/** Device ids may contain no glob characters by validation, but escape anyway. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}
