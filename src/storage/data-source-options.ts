import type { DataSourceOptions } from 'typeorm';
import { MIGRATIONS } from './migrations';

export function dataSourceOptions(url: string, poolSize: number): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    synchronize: false,
    migrationsRun: false,
    migrations: MIGRATIONS,
    migrationsTransactionMode: 'each',
    entities: [],
    logging: false,
    extra: {
      max: poolSize,
      // Keep session time zone fixed so timestamps and date_trunc agree on every connection.
      options: '-c TimeZone=UTC',
      connectionTimeoutMillis: 5000,
      application_name: 'telemetry-hub',
    },
  };
}
