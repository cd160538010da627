// Checks made before anything starts, so that a configuration problem is one
// clear line within a second rather than a stack trace after the embedded
// database has started: the ports this instance will listen on are free, and
// the configured PostgreSQL answers. (The listeners map EADDRINUSE to the same
// message should another program take a port in the meantime.)
import { createServer } from 'node:net';
import { Client } from 'pg';
import type { AppConfig } from '../config/app-config';
import { secretsOf } from '../config/app-config';
import { SecretMasker } from '../logging/app-logger';
import { httpPortInUse, maskUrl, mqttPortInUse, StartupProblem } from './startup-problem';

const DATABASE_CONNECT_TIMEOUT_MS = 10_000;

/** The same bind the real listener makes (host undefined = every interface, as the broker does). */
function portFree(port: number, host: string | undefined): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => (error.code === 'EADDRINUSE' ? resolve(false) : reject(error)));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export async function checkPorts(config: AppConfig, httpHost: string): Promise<StartupProblem[]> {
  const problems: StartupProblem[] = [];
  const embedded = config.mqtt.url === undefined;
  if (embedded && config.port !== 0 && config.port === config.mqtt.embeddedPort) {
    return [new StartupProblem(`PORT and MQTT_PORT are both ${config.port}: the HTTP API and the embedded broker need a port each`)];
  }
  if (config.port !== 0 && !(await portFree(config.port, httpHost))) problems.push(httpPortInUse(config.port));
  if (embedded && config.mqtt.embeddedPort !== 0 && !(await portFree(config.mqtt.embeddedPort, undefined))) {
    problems.push(mqttPortInUse(config.mqtt.embeddedPort));
  }
  return problems;
}

/** One connection to DATABASE_URL (when set), closed at once. */
export async function checkDatabase(config: AppConfig): Promise<StartupProblem | undefined> {
  const url = config.database.url;
  if (!url) return undefined;
  const client = new Client({ connectionString: url, connectionTimeoutMillis: DATABASE_CONNECT_TIMEOUT_MS });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return undefined;
  } catch (error) {
    return databaseProblem(url, error, new SecretMasker(secretsOf(config)));
  } finally {
    await client.end().catch(() => undefined);
  }
}

function databaseProblem(url: string, error: unknown, masker: SecretMasker): StartupProblem {
  const address = maskUrl(url);
  const code = (error as { code?: unknown }).code;
  // A refused connection to a name with several addresses is an AggregateError with an empty message.
  const message = error instanceof Error ? error.message || (typeof code === 'string' ? code : error.name) : String(error);
  const reason = masker.mask(message);
  if (code === '3D000') {
    return new StartupProblem(
      `DATABASE_URL ${address}: ${reason}; create it first (\`${createdbCommand(url)}\`) or point DATABASE_URL at an existing database`,
    );
  }
  return new StartupProblem(`DATABASE_URL ${address} cannot be reached: ${reason}; start PostgreSQL there, or unset DATABASE_URL to use the embedded database`);
}

/** `createdb -h host -p port -U user name` for the database the URL names. */
function createdbCommand(url: string): string {
  const parsed = new URL(url);
  const parts = ['createdb'];
  if (parsed.hostname) parts.push('-h', parsed.hostname.replace(/^\[|\]$/g, ''));
  if (parsed.port) parts.push('-p', parsed.port);
  if (parsed.username) parts.push('-U', decodeURIComponent(parsed.username));
  parts.push(decodeURIComponent(parsed.pathname.slice(1)));
  return parts.join(' ');
}
