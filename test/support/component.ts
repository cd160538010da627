// Component tests (immich's test/medium style): only the Nest modules a test
// names are built, over the real servers, with the configuration validated as
// in production. Lifecycle hooks run (init / close), so a service subscribes
// to its events and opens its connections exactly as it does in the app,
// without HTTP, MQTT or the rest of the graph.
//
//   const c = await startComponent({ env: { DATABASE_URL: db.url }, imports: [StorageModule] });
//   const writer = c.get(SampleWriter);
//   await c.close();
import type { ModuleMetadata } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import type { AppConfig } from '../../src/config/app-config';
import { ConfigModule } from '../../src/config/config.module';
import { loadConfig } from '../../src/config/load-config';
import { EventsModule } from '../../src/events/events.module';
import { MetricsModule } from '../../src/metrics/metrics.module';
import { capturingLogger } from './capturing-logger';

export interface Component {
  module: TestingModule;
  config: AppConfig;
  /** Log lines (pino JSON) written while the component ran. */
  logs: string[];
  get<T>(type: abstract new (...args: never[]) => T): T;
  close(): Promise<void>;
}

export interface ComponentOptions {
  /** Environment as an operator would set it; MQTT and PORT are irrelevant here. */
  env: Record<string, string | undefined>;
  /** Modules under test, on top of config, metrics and the event bus every module may inject. */
  imports?: NonNullable<ModuleMetadata['imports']>;
  providers?: NonNullable<ModuleMetadata['providers']>;
}

export async function startComponent(options: ComponentOptions): Promise<Component> {
  const config = loadConfig({ INSTANCE_ID: `component-${process.pid}`, LOG_LEVEL: 'info', ...options.env });
  const { logger, logs } = capturingLogger(config);
  const module = await Test.createTestingModule({
    imports: [ConfigModule.forRoot(config), MetricsModule, EventsModule, ...(options.imports ?? [])],
    providers: options.providers ?? [],
  })
    .setLogger(logger)
    .compile();
  try {
    await module.init();
  } catch (error) {
    await module.close().catch(() => undefined);
    throw error;
  }
  return {
    module,
    config,
    logs,
    get: (type) => module.get(type),
    close: () => module.close(),
  };
}
