// Boots the real application in-process, configured like a user would through
// environment variables, on free ports, with its log lines captured.
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { AppConfig } from '../../src/config/app-config';
import { loadConfig } from '../../src/config/load-config';
import { createApp } from '../../src/create-app';
import { capturingLogger } from './capturing-logger';
import { freePort } from './free-port';

export interface TestApp {
  app: NestFastifyApplication;
  config: AppConfig;
  baseUrl: string;
  logs: string[];
  get<T>(type: abstract new (...args: never[]) => T): T;
  close(): Promise<void>;
}

export async function startTestApp(env: Record<string, string | undefined>): Promise<TestApp> {
  const port = await freePort();
  const config = loadConfig({
    INSTANCE_ID: `test-${port}`,
    LOG_LEVEL: 'info',
    ...env,
    PORT: String(port),
  });
  const { logger, logs } = capturingLogger(config);
  const app = await createApp(config, { logger });
  try {
    await app.listen(port, '127.0.0.1');
  } catch (error) {
    // A half-started app (embedded PostgreSQL running) would keep Jest from exiting.
    await app.close().catch(() => undefined);
    throw error;
  }
  return {
    app,
    config,
    baseUrl: `http://127.0.0.1:${port}`,
    logs,
    get: (type) => app.get(type),
    close: () => app.close(),
  };
}
