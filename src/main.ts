// Process entry: read .env, validate configuration, check ports and the
// database, build the app, listen, say where everything is.
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { AppConfig } from './config/app-config';
import { loadEnvFile } from './config/env-file';
import { CONFIG_VARIABLES, ConfigError, loadConfig } from './config/load-config';
import { RELATED_VARIABLES, unknownVariableWarnings } from './config/unknown-variables';
import { createApp } from './create-app';
import { EmbeddedBroker } from './broker/embedded-broker';
import { serviceAddresses } from './startup/addresses';
import { checkDatabase, checkPorts } from './startup/preflight';
import { logStrayRejections } from './startup/stray-rejections';
import { addressInUsePort, httpPortInUse, StartupProblem } from './startup/startup-problem';

const HTTP_HOST = '0.0.0.0';
/** A failed start still stops what it started (embedded PostgreSQL flushes its files), but not forever. */
const CLOSE_AFTER_FAILURE_MS = 5000;

function fail(lines: string[]): never {
  for (const line of lines) process.stderr.write(`telemetry-hub: ${line}\n`);
  process.exit(1);
}

function configure(): { config: AppConfig; envFile: string | undefined } {
  const envFile = loadEnvFile('.env');
  for (const warning of unknownVariableWarnings(process.env, [...CONFIG_VARIABLES, ...RELATED_VARIABLES])) {
    process.stderr.write(`telemetry-hub: warning: ${warning}\n`);
  }
  try {
    return { config: loadConfig(), envFile: envFile.path };
  } catch (error) {
    if (error instanceof ConfigError) fail(error.problems);
    throw error;
  }
}

async function closeQuietly(app: NestFastifyApplication): Promise<void> {
  await Promise.race([app.close().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, CLOSE_AFTER_FAILURE_MS).unref())]);
}

async function main(): Promise<void> {
  const { config, envFile } = configure();
  logStrayRejections(process, new Logger('Process'));
  const problems = await checkPorts(config, HTTP_HOST);
  const database = await checkDatabase(config);
  if (database) problems.push(database);
  if (problems.length > 0) fail(problems.map((p) => p.message));

  const app = await createApp(config);
  try {
    await app.listen(config.port, HTTP_HOST);
  } catch (error) {
    // Another program took a port between the check and the listen.
    const problem = error instanceof StartupProblem ? error : addressInUsePort(error) === config.port ? httpPortInUse(config.port) : undefined;
    if (!problem) throw error;
    await closeQuietly(app);
    fail([problem.message]);
  }
  const address = app.getHttpServer().address();
  const httpPort = typeof address === 'object' && address ? address.port : config.port;
  const mqttPort = config.mqtt.url ? undefined : app.get(EmbeddedBroker).port;
  new Logger('Startup').log({ msg: 'telemetry-hub is ready', ...serviceAddresses(config, httpPort, mqttPort), envFile });
}

main().catch((error: unknown) => {
  process.stderr.write(`telemetry-hub: start-up failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
