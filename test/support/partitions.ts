// Reads and checks the partition layout of samples, and builds a database at
// the schema before partitioning, for the partitioning tests (real and embedded).
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../../src/storage/data-source-options';
import { MIGRATIONS } from '../../src/storage/migrations';
import { PartitionSamples1732400000000 } from '../../src/storage/migrations/1732400000000-partition-samples';

export interface Queryable {
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
}

export interface Part {
  name: string;
  from: number | null;
  to: number | null;
}

/** The partitions of samples, lowest first (the catch-all has from = null). */
export async function partitionLayout(db: Queryable): Promise<Part[]> {
  const rows = await db.query<{ name: string; from: Date | null; to: Date | null }>(`
    SELECT c.relname AS name,
      (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
      (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'samples'::regclass`);
  return rows
    .map((r) => ({ name: r.name, from: r.from?.getTime() ?? null, to: r.to?.getTime() ?? null }))
    .sort((a, b) => (a.from ?? -Infinity) - (b.from ?? -Infinity));
}

/** Problems with the layout: a hole, an overlap, or no catch-all at the bottom; [] when sound. */
export function layoutProblems(parts: Part[]): string[] {
  const problems: string[] = [];
  if (parts[0]?.from !== null) problems.push('no catch-all partition from MINVALUE');
  for (let i = 1; i < parts.length; i++) {
    if (parts[i].from !== parts[i - 1].to) problems.push(`${parts[i - 1].name} ends at ${parts[i - 1].to}, ${parts[i].name} starts at ${parts[i].from}`);
  }
  return problems;
}

/** How many rows of samples each partition holds. */
export async function rowsPerPartition(db: Queryable): Promise<Record<string, number>> {
  const rows = await db.query<{ name: string; n: number }>(`SELECT tableoid::regclass::text AS name, count(*)::int AS n FROM samples GROUP BY 1`);
  return Object.fromEntries(rows.map((r) => [r.name, r.n]));
}

/** Applies the migrations that came before partitioning, as an install of the previous release would have. */
export async function migrateToBeforePartitioning(url: string): Promise<void> {
  const before = MIGRATIONS.slice(0, MIGRATIONS.indexOf(PartitionSamples1732400000000));
  const source = new DataSource({ ...dataSourceOptions(url, 1), migrations: before });
  await source.initialize();
  try {
    await source.runMigrations({ transaction: 'each' });
  } finally {
    await source.destroy();
  }
}
