// `npm run migration:run`: applies pending migrations to DATABASE_URL (or to
// the embedded database in DATA_DIR), read like `npm start` does (.env too), and exits. The service also runs them at
// start-up; this is for operators who migrate before rolling out.
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { secretsOf } from '../config/app-config';
import { loadEnvFile } from '../config/env-file';
import { ConfigError, loadConfig } from '../config/load-config';
import { AppLogger } from '../logging/app-logger';
import { DatabaseService } from './database.service';

async function main(): Promise<void> {
  // The same .env as `npm start`, so both migrate the same database.
  loadEnvFile('.env');
  const config = loadConfig();
  Logger.overrideLogger(new AppLogger({ level: config.logLevel, secrets: secretsOf(config), instanceId: config.instanceId }));
  const db = new DatabaseService(config);
  try {
    await db.start();
    const [{ count }] = await db.query<{ count: number }>('SELECT count(*)::int AS count FROM migrations');
    process.stdout.write(`migrations up to date (${count} applied)\n`);
  } finally {
    await db.onApplicationShutdown();
  }
}

main().catch((error: unknown) => {
  const lines = error instanceof ConfigError ? error.problems : [error instanceof Error ? error.message : String(error)];
  for (const line of lines) process.stderr.write(`telemetry-hub migrate: ${line}\n`);
  process.exit(1);
});
