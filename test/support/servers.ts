// Real-server tests run only where global-setup found the shared server
// listening; under CI=true global-setup has already failed the run instead.
// The servers default to the local ones on loopback; TEST_DATABASE_URL,
// TEST_REDIS_URL and TEST_MQTT_URL point the tests at servers elsewhere.
export type SharedServer = 'postgres' | 'redis' | 'mosquitto';

/** A database the tests may connect to and create their own databases from (CREATEDB needed). */
export const SHARED_POSTGRES_URL = process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
/** Tests use their own database numbers on it (see sharedRedisUrl). */
export const SHARED_REDIS_URL = (process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379').replace(/\/\d*$/, '');
export const SHARED_MQTT_URL = process.env.TEST_MQTT_URL || 'mqtt://127.0.0.1:1883';

const DEFAULT_PORTS: Record<SharedServer, number> = { postgres: 5432, redis: 6379, mosquitto: 1883 };

/** Where global-setup probes each shared server. */
export function sharedServerAddress(server: SharedServer): { host: string; port: number } {
  const url = new URL({ postgres: SHARED_POSTGRES_URL, redis: SHARED_REDIS_URL, mosquitto: SHARED_MQTT_URL }[server]);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port ? Number(url.port) : DEFAULT_PORTS[server] };
}

/** The shared Redis with database number `db` (credentials and TLS kept from TEST_REDIS_URL). */
export function sharedRedisUrl(db: number): string {
  const url = new URL(SHARED_REDIS_URL);
  url.pathname = `/${db}`;
  return url.toString();
}

/** The shared PostgreSQL server with another database name. */
export function sharedPostgresUrl(database: string): string {
  const url = new URL(SHARED_POSTGRES_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

export function serversAvailable(...needed: SharedServer[]): boolean {
  const available = new Set((process.env.TELEMETRY_TEST_SERVERS ?? '').split(',').filter(Boolean));
  return needed.every((name) => available.has(name));
}

/** `describe` when the servers are there, otherwise a skipped describe. */
export function describeWithServers(needed: SharedServer[]): jest.Describe {
  return serversAvailable(...needed) ? describe : describe.skip;
}
