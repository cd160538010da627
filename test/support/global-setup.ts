// Probes the shared servers once per run (loopback unless TEST_DATABASE_URL,
// TEST_REDIS_URL or TEST_MQTT_URL say otherwise). Tests that need one read
// TELEMETRY_TEST_SERVERS (workers inherit the env); under CI=true a missing
// server fails the run instead of letting its tests skip.
import { connect } from 'node:net';
import { type SharedServer, sharedServerAddress } from './servers';

const SHARED_SERVERS: SharedServer[] = ['postgres', 'redis', 'mosquitto'];

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
  const available: SharedServer[] = [];
  const missing: SharedServer[] = [];
  for (const name of SHARED_SERVERS) {
    const { host, port } = sharedServerAddress(name);
    ((await listening(host, port)) ? available : missing).push(name);
  }
  if (missing.length > 0 && process.env.CI === 'true') {
    throw new Error(`CI=true but these servers are not listening: ${missing.map((name) => `${name} (${hostPort(name)})`).join(', ')}`);
  }
  process.env.TELEMETRY_TEST_SERVERS = available.join(',');
}

function hostPort(name: SharedServer): string {
  const { host, port } = sharedServerAddress(name);
  return `${host}:${port}`;
}
