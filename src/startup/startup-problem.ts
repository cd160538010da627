// Configuration problems found while starting (a port taken, a database that
// cannot be reached): each is one line for the operator that says what is
// wrong and what to do, printed instead of a stack trace before exiting 1.
import { SecretMasker } from '../logging/app-logger';

export class StartupProblem extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupProblem';
  }
}

/** The URL with its password replaced by ***, for messages. */
export function maskUrl(url: string): string {
  return new SecretMasker([]).mask(url);
}

export function httpPortInUse(port: number): StartupProblem {
  return new StartupProblem(`PORT ${port} is already in use by another program: set PORT=<free port> (e.g. PORT=3001)`);
}

export function mqttPortInUse(port: number): StartupProblem {
  return new StartupProblem(
    `MQTT_PORT ${port} is already in use (another MQTT broker is probably running there): ` +
      `set MQTT_PORT=<free port> (e.g. MQTT_PORT=1884) for the embedded broker, ` +
      `or MQTT_URL=mqtt://127.0.0.1:${port} to use the broker already running there`,
  );
}

/** Node's EADDRINUSE from listen(): which port it was about, if any. */
export function addressInUsePort(error: unknown): number | undefined {
  if (!(error instanceof Error) || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') return undefined;
  const port = (error as Error & { port?: unknown }).port;
  return typeof port === 'number' ? port : undefined;
}
