// Owns the daily partitions of `samples` and of its minute rollup
// `minute_aggregates` after the migrations made them: keeps
// every UTC day from the catch-all partition's bound through today + 7 days
// covered, and, when RETENTION_DAYS is set, drops whole days older than the
// cutoff. Runs at start-up (before ingestion consumes anything), every hour,
// and on demand when a write finds no partition for a row.
//
// Invariant: the partitions cover one unbroken range, from MINVALUE (the
// catch-all, which also holds whatever an upgrade found in the old table) to
// the newest day created. Dropping old days would open a hole below the first
// kept day, so the same transaction moves the catch-all's bound up over the
// dropped range: a sample with an old timestamp always has somewhere to go.
// Both tables get the same plan from the same clock, so a day of samples and
// its minute rollups are dropped together and the rollup keeps equalling the
// samples. The retention cutoff is a whole minute for the same reason: a
// trimmed catch-all never keeps part of a minute whose rollup row is gone.
import { Logger, type BeforeApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { DatabaseService } from './database.service';
import { FOLD_BEFORE_SQL } from './hourly-folder';

export const DAY_MS = 24 * 3600_000;
/** Partitions kept ready: today and the 7 days after it (the payload parser accepts at most now + 1 day). */
export const DAYS_AHEAD = 8;
/** A write may ask for days beyond DAYS_AHEAD, never for more than this (a bad clock must not create years of tables). */
const MAX_DAYS_AHEAD_ON_DEMAND = 35;
const RUN_EVERY_MS = 3600_000;
/** Arbitrary, fixed: serialises maintenance across instances (migrations use 7_243_001). */
const MAINTENANCE_LOCK_KEY = 7_243_002;
/**
 * Waiting for a table lock queues every writer behind the waiter, so a run
 * that meets a long-running query gives up quickly and tries again next hour
 * (seven days of partitions ahead leave plenty of room).
 */
const LOCK_TIMEOUT = '2s';

export type Clock = () => number;

/** One child of `samples` as the catalogue describes it; null = MINVALUE / MAXVALUE. */
export interface PartitionRange {
  name: string;
  from: number | null;
  to: number | null;
}

export type PartitionStep =
  | { kind: 'create'; name: string; from: number; to: number }
  | { kind: 'drop'; name: string; from: number; to: number }
  | { kind: 'create-catchall'; name: string; to: number }
  | { kind: 'empty-catchall'; name: string }
  | { kind: 'extend-catchall'; name: string; from: number; to: number }
  | { kind: 'trim-catchall'; name: string; before: number };

export interface PlanInput {
  partitions: readonly PartitionRange[];
  now: number;
  retentionDays: number | undefined;
  /** A timestamp that must have a partition when the run is done (a failed write's newest sample). */
  through?: number;
  /** Which table's partitions these are; samples when absent. */
  table?: string;
}

/** A table partitioned by UTC day on one timestamptz column. */
export interface PartitionedTable {
  name: string;
  /** The partition key column (what a catch-all trim compares). */
  column: string;
  /** Storage parameters of each partition (a partitioned parent cannot carry them in PostgreSQL 15). */
  storage: string;
}

export const SAMPLES_TABLE: PartitionedTable = { name: 'samples', column: 'ts', storage: '' };
/** Rows of the current minute are updated by every batch: room on the page for HOT updates, as for hourly_aggregates. */
export const MINUTE_AGGREGATES_TABLE: PartitionedTable = { name: 'minute_aggregates', column: 'bucket', storage: ' WITH (fillfactor = 50)' };
/** Maintained in this order (writers lock samples first too). */
const TABLES = [SAMPLES_TABLE, MINUTE_AGGREGATES_TABLE];

export const CATCHALL_NAME = 'samples_catchall';
const MINUTE_MS = 60_000;
export const floorDay = (ms: number) => Math.floor(ms / DAY_MS) * DAY_MS;
export const dailyPartitionName = (dayMs: number, table = SAMPLES_TABLE.name) => `${table}_p${new Date(dayMs).toISOString().slice(0, 10).replace(/-/g, '')}`;
const catchAllName = (table: string) => `${table}_catchall`;

/**
 * What one run must do, from the catalogue as it is: a pure function so the
 * layout rules are testable without a database. Order matters: retention
 * first (it moves the catch-all's bound), then the days from that bound on.
 */
export function planPartitions({ partitions, now, retentionDays, through, table = SAMPLES_TABLE.name }: PlanInput): PartitionStep[] {
  const steps: PartitionStep[] = [];
  const catchAll = partitions.find((p) => p.from === null);
  let daily = partitions.filter((p): p is PartitionRange & { from: number } => p.from !== null).sort((a, b) => a.from - b.from);
  const today = floorDay(now);

  let bound: number;
  if (catchAll) {
    bound = catchAll.to ?? Number.POSITIVE_INFINITY;
  } else {
    bound = daily[0]?.from ?? today;
    steps.push({ kind: 'create-catchall', name: catchAllName(table), to: bound });
  }
  const catchAllPartition = catchAll?.name ?? catchAllName(table);

  if (retentionDays !== undefined) {
    const cutoff = Math.floor((now - retentionDays * DAY_MS) / MINUTE_MS) * MINUTE_MS;
    const expired = daily.filter((p) => p.to !== null && p.to <= cutoff);
    const kept = daily.filter((p) => !expired.includes(p));
    // Everything below the new bound is older than the cutoff; the bound never passes a kept day.
    let target = Math.max(bound, floorDay(cutoff));
    if (kept.length > 0) target = Math.max(bound, Math.min(target, kept[0].from));
    if (target > bound) {
      for (const p of expired) steps.push({ kind: 'drop', name: p.name, from: p.from, to: p.to as number });
      // Every row in the catch-all is below the old bound, so older than the cutoff: empty it whole.
      steps.push({ kind: 'empty-catchall', name: catchAllPartition });
      steps.push({ kind: 'extend-catchall', name: catchAllPartition, from: bound, to: target });
      bound = target;
      daily = kept;
    } else {
      steps.push({ kind: 'trim-catchall', name: catchAllPartition, before: cutoff });
    }
  }

  const wanted = through === undefined ? today : Math.min(floorDay(through), today + MAX_DAYS_AHEAD_ON_DEMAND * DAY_MS);
  const horizon = Math.max(today + DAYS_AHEAD * DAY_MS, wanted + DAY_MS);
  for (let from = bound; from < horizon;) {
    const to = floorDay(from) + DAY_MS;
    const taken = daily.some((p) => p.from < to && (p.to === null || p.to > from));
    if (!taken) steps.push({ kind: 'create', name: dailyPartitionName(from, table), from, to });
    from = to;
  }
  return steps;
}

const literal = (ms: number) => `'${new Date(ms).toISOString()}'`;
const iso = (ms: number) => new Date(ms).toISOString();

export class PartitionMaintainer implements OnModuleInit, BeforeApplicationShutdown {
  private readonly logger = new Logger('Partitions');
  private timer: NodeJS.Timeout | undefined;
  /** Runs are chained so one process never runs two at once (the advisory lock covers other processes). */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly db: DatabaseService,
    private readonly retentionDays: number | undefined,
    private readonly clock: Clock = Date.now,
  ) {}

  async onModuleInit(): Promise<void> {
    // The migration already created a week ahead, so a failure here (a lock
    // held by a long query) need not stop start-up: the next run retries.
    await this.run().catch((error: unknown) => this.logFailure(error));
    this.timer = setInterval(() => {
      this.run().catch((error: unknown) => this.logFailure(error));
    }, RUN_EVERY_MS);
    this.timer.unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.tail.catch(() => undefined);
  }

  /** Makes sure a partition exists for `throughMs` (and for every day up to it). */
  ensure(throughMs: number): Promise<PartitionStep[]> {
    return this.run(throughMs);
  }

  /** One maintenance run; resolves with the steps it carried out. */
  run(throughMs?: number): Promise<PartitionStep[]> {
    const next = this.tail.catch(() => undefined).then(() => this.runOnce(throughMs));
    this.tail = next;
    return next;
  }

  private async runOnce(through: number | undefined): Promise<PartitionStep[]> {
    const now = this.clock();
    const done: Array<{ step: PartitionStep; deleted: number | undefined }> = [];
    await this.db.dataSource.transaction(async (m) => {
      await m.query('SELECT pg_advisory_xact_lock($1)', [MAINTENANCE_LOCK_KEY]);
      // After the advisory lock: waiting for another instance's run is fine, waiting behind a long query is not.
      await m.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
      const plans: Array<{ table: PartitionedTable; steps: PartitionStep[] }> = [];
      for (const table of TABLES) {
        const partitions = await readPartitions(m, table.name);
        plans.push({ table, steps: planPartitions({ partitions, now, retentionDays: this.retentionDays, through, table: table.name }) });
      }
      // Lock the parents before any child, in the order writers take them, so a run cannot deadlock an insert.
      if (plans.some((p) => p.steps.some((s) => s.kind !== 'create' && s.kind !== 'trim-catchall'))) {
        for (const { table } of plans) await m.query(`LOCK TABLE ONLY ${table.name} IN ACCESS EXCLUSIVE MODE`);
      }
      // The hourly tier outlives retention: minutes about to be dropped are folded into it first.
      const minuteSteps = plans.find((p) => p.table === MINUTE_AGGREGATES_TABLE)?.steps ?? [];
      const dropsBefore = Math.max(
        ...minuteSteps.map((s) => (s.kind === 'drop' ? s.to : s.kind === 'trim-catchall' ? s.before : s.kind === 'empty-catchall' ? Infinity : -Infinity)),
      );
      if (dropsBefore > -Infinity) await m.query(FOLD_BEFORE_SQL, [Number.isFinite(dropsBefore) ? iso(dropsBefore) : 'infinity']);
      for (const { table, steps } of plans) {
        for (const step of steps) {
          const deleted = await execute(m, table, step);
          if (step.kind !== 'trim-catchall' || deleted) done.push({ step, deleted });
        }
      }
    });
    // Logged after the commit: until then nothing happened.
    for (const { step, deleted } of done) this.logger.log(logLine(step, deleted));
    return done.map((d) => d.step);
  }

  private logFailure(error: unknown): void {
    this.logger.warn({ msg: 'partition maintenance failed; will retry', error: error instanceof Error ? error.message : String(error) });
  }
}

async function readPartitions(m: EntityManager, table: string): Promise<PartitionRange[]> {
  // Bounds are parsed back by PostgreSQL itself from the text it printed, so
  // the session's DateStyle and time zone cannot confuse them.
  const rows = (await m.query(
    `
    SELECT c.oid::regclass::text AS name,
      (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
      (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = $1::regclass`,
    [table],
  )) as Array<{ name: string; from: Date | null; to: Date | null }>;
  return rows.map((r) => ({ name: r.name, from: r.from?.getTime() ?? null, to: r.to?.getTime() ?? null }));
}

/** Runs one step; for a trim, resolves with the number of rows deleted. */
async function execute(m: EntityManager, table: PartitionedTable, step: PartitionStep): Promise<number | undefined> {
  const parent = table.name;
  switch (step.kind) {
    case 'create':
      // CREATE … PARTITION OF would take an ACCESS EXCLUSIVE lock on samples;
      // ATTACH takes SHARE UPDATE EXCLUSIVE, which blocks neither writes nor reads.
      await m.query(`CREATE TABLE ${step.name} (LIKE ${parent} INCLUDING ALL)${table.storage}`);
      await m.query(`ALTER TABLE ${parent} ATTACH PARTITION ${step.name} FOR VALUES FROM (${literal(step.from)}) TO (${literal(step.to)})`);
      return undefined;
    case 'drop':
      await m.query(`DROP TABLE ${step.name}`);
      return undefined;
    case 'create-catchall':
      await m.query(`CREATE TABLE ${step.name} (LIKE ${parent} INCLUDING ALL)${table.storage}`);
      await m.query(`ALTER TABLE ${parent} ATTACH PARTITION ${step.name} FOR VALUES FROM (MINVALUE) TO (${literal(step.to)})`);
      return undefined;
    case 'empty-catchall':
      await m.query(`TRUNCATE ${step.name}`);
      return undefined;
    case 'extend-catchall':
      // A bound cannot be altered in place; the table is empty here, so re-attaching checks nothing.
      await m.query(`ALTER TABLE ${parent} DETACH PARTITION ${step.name}`);
      await m.query(`ALTER TABLE ${parent} ATTACH PARTITION ${step.name} FOR VALUES FROM (MINVALUE) TO (${literal(step.to)})`);
      return undefined;
    case 'trim-catchall': {
      // Only late or old-clock samples (and, after an upgrade, the old table) live here, so it is small.
      const [row] = (await m.query(`WITH d AS (DELETE FROM ${step.name} WHERE ${table.column} < $1 RETURNING 1) SELECT count(*)::int AS n FROM d`, [
        iso(step.before),
      ])) as Array<{ n: number }>;
      return row.n;
    }
  }
}

function logLine(step: PartitionStep, deleted: number | undefined): Record<string, unknown> {
  switch (step.kind) {
    case 'create':
      return { msg: 'partition created', partition: step.name, from: iso(step.from), to: iso(step.to) };
    case 'drop':
      return { msg: 'partition dropped (retention)', partition: step.name, from: iso(step.from), to: iso(step.to) };
    case 'create-catchall':
      return { msg: 'catch-all partition created', partition: step.name, to: iso(step.to) };
    case 'empty-catchall':
      return { msg: 'catch-all partition emptied (retention)', partition: step.name };
    case 'extend-catchall':
      return { msg: 'catch-all partition extended', partition: step.name, from: iso(step.from), to: iso(step.to) };
    case 'trim-catchall':
      return { msg: 'catch-all partition trimmed (retention)', partition: step.name, before: iso(step.before), deleted };
  }
}
