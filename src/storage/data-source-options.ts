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
      // JIT off: every query here is a short index lookup, but over daily
      // partitions some estimates pass jit_above_cost and compiling then took
      // ~90 ms for a 4 ms query (docs/scaling.md).
      options: '-c TimeZone=UTC -c jit=off',
      connectionTimeoutMillis: 5000,
      application_name: 'telemetry-hub',
    },
  };
}
