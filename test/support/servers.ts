// Real-server tests run only where global-setup found the shared server
// listening; under CI=true global-setup has already failed the run instead.
export type SharedServer = 'postgres' | 'redis' | 'mosquitto';

export const SHARED_POSTGRES_URL = 'postgres://postgres@127.0.0.1:5432/test';
export const SHARED_REDIS_URL = 'redis://127.0.0.1:6379';
export const SHARED_MQTT_URL = 'mqtt://127.0.0.1:1883';

export function serversAvailable(...needed: SharedServer[]): boolean {
  const available = new Set((process.env.TELEMETRY_TEST_SERVERS ?? '').split(',').filter(Boolean));
  return needed.every((name) => available.has(name));
}

/** `describe` when the servers are there, otherwise a skipped describe. */
export function describeWithServers(needed: SharedServer[]): jest.Describe {
  return serversAvailable(...needed) ? describe : describe.skip;
}
