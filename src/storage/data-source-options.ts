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
      // Also bounds the wait for a free pooled connection: with every
      // connection stuck on a silent link a caller fails after 5 s instead of queueing forever.
      connectionTimeoutMillis: 5000,
      // TCP keepalive: an idle pooled connection whose peer vanished without a
      // reset (host gone, route dropped) is closed by the kernel instead of
      // being handed out hours later. Busy connections rely on the statement
      // deadline in DatabaseService.query.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'telemetry-hub',
    },
  };
}
