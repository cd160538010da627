import { Writable } from 'node:stream';
import { type AppConfig, secretsOf } from '../../src/config/app-config';
import { AppLogger } from '../../src/logging/app-logger';

/** The service's logger (secrets masked, pino JSON) writing into an array instead of stdout. */
export function capturingLogger(config: AppConfig): { logger: AppLogger; logs: string[] } {
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      callback();
    },
  });
  const logger = new AppLogger({
    level: config.logLevel,
    secrets: secretsOf(config),
    instanceId: config.instanceId,
    destination,
    pretty: false,
  });
  return { logger, logs };
}
