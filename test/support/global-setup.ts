// Probes the shared loopback servers once per run. Tests that need one read
// TELEMETRY_TEST_SERVERS (workers inherit the env); under CI=true a missing
// server fails the run instead of letting its tests skip.
import { connect } from 'node:net';

export const SHARED_SERVERS = {
  postgres: { host: '127.0.0.1', port: 5432 },
  redis: { host: '127.0.0.1', port: 6379 },
  mosquitto: { host: '127.0.0.1', port: 1883 },
} as const;

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export default async function globalSetup(): Promise<void> {
  const available: string[] = [];
  const missing: string[] = [];
  for (const [name, { host, port }] of Object.entries(SHARED_SERVERS)) {
    (await listening(host, port) ? available : missing).push(name);
  }
  if (missing.length > 0 && process.env.CI === 'true') {
    throw new Error(`CI=true but these servers are not listening: ${missing.join(', ')}`);
  }
  process.env.TELEMETRY_TEST_SERVERS = available.join(',');
}
