// All alarm SQL: rules, per rule × device state, alarms and the webhook
// outbox. Statements that must commit together take the transaction's client
// (`Tx`); the evaluator and the rule service decide what goes in one.
import { Injectable } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { DatabaseService } from '../storage/database.service';
import type { AlarmRule, AlarmRuleSpec, Severity } from './alarm-rule';
import type { PairState } from './alarm-evaluator';

export type Tx = Pick<PoolClient, 'query'>;

export type AlarmStatus = 'active' | 'acknowledged' | 'cleared';
export const ALARM_STATUSES: readonly AlarmStatus[] = ['active', 'acknowledged', 'cleared'];

/** An alarm as the API, the WebSocket event and the webhook show it. */
export interface AlarmView {
  id: number;
  ruleId: number;
  deviceId: string;
  metric: string;
  severity: Severity;
  status: AlarmStatus;
  raisedAt: string;
  value: number;
  acknowledgedAt: string | null;
  clearedAt: string | null;
}

export interface RuleView extends AlarmRuleSpec {
  id: number;
  createdAt: string;
  updatedAt: string;
}

export interface StoredState extends PairState {
  ruleId: number;
  deviceId: string;
  ruleVersion: number;
}

export interface OutboxRow {
  id: string;
  url: string;
  body: string;
  attempts: number;
  createdAt: Date;
}

interface AlarmRow {
  id: string;
  rule_id: string;
  device_id: string;
  metric: string;
  severity: Severity;
  status: AlarmStatus;
  raised_at: Date;
  value: number;
  acknowledged_at: Date | null;
  cleared_at: Date | null;
}

interface RuleRow {
  id: string;
  spec: AlarmRuleSpec;
  version: string;
  created_at: Date;
  updated_at: Date;
}

const ALARM_COLUMNS = 'id, rule_id, device_id, metric, severity, status, raised_at, value, acknowledged_at, cleared_at';
const MS = `'epoch'::timestamptz + interval '1 millisecond' *`;

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const num = (v: string | number | null) => (v === null ? null : Number(v));

export function toAlarmView(row: AlarmRow): AlarmView {
  return {
    id: Number(row.id),
    ruleId: Number(row.rule_id),
    deviceId: row.device_id,
    metric: row.metric,
    severity: row.severity,
    status: row.status,
    raisedAt: row.raised_at.toISOString(),
    value: Number(row.value),
    acknowledgedAt: iso(row.acknowledged_at),
    clearedAt: iso(row.cleared_at),
  };
}

function toRule(row: RuleRow): AlarmRule {
  return { ...row.spec, id: Number(row.id), version: Number(row.version) };
}

function toRuleView(row: RuleRow): RuleView {
  return { id: Number(row.id), ...row.spec, createdAt: row.created_at.toISOString(), updatedAt: row.updated_at.toISOString() };
}

@Injectable()
export class AlarmStore {
  constructor(private readonly db: DatabaseService) {}

  /** Runs `fn` in one transaction on one pooled connection. */
  async transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    const runner = this.db.dataSource.createQueryRunner();
    const client = (await runner.connect()) as PoolClient;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    } finally {
      await runner.release();
    }
  }

  /** One statement on its own (TypeORM's query() reshapes UPDATE … RETURNING answers; pg's does not). */
  private async rows<T>(sql: string, params: unknown[] = []): Promise<T[]> {
    const runner = this.db.dataSource.createQueryRunner();
    const client = (await runner.connect()) as PoolClient;
    try {
      return (await client.query(sql, params)).rows as T[];
    } finally {
      await runner.release();
    }
  }

  // ---- rules -------------------------------------------------------------

  async rulesVersion(): Promise<number> {
    const [row] = await this.rows<{ version: string }>(`SELECT version FROM alarm_rules_version WHERE id = 1`);
    return Number(row?.version ?? 0);
  }

  /** Every rule and the version they are consistent with (one snapshot). */
  async loadRules(): Promise<{ version: number; rules: AlarmRule[] }> {
    const rows = await this.rows<RuleRow & { all_version: string }>(
      `SELECT r.id, r.spec, r.version, r.created_at, r.updated_at, v.version AS all_version
         FROM alarm_rules_version v LEFT JOIN alarm_rules r ON true WHERE v.id = 1`,
    );
    return { version: Number(rows[0]?.all_version ?? 0), rules: rows.filter((r) => r.id !== null).map(toRule) };
  }

  async listRules(): Promise<RuleView[]> {
    return (await this.rows<RuleRow>(`SELECT id, spec, version, created_at, updated_at FROM alarm_rules ORDER BY id`)).map(toRuleView);
  }

  async findRule(id: number): Promise<RuleView | undefined> {
    const [row] = await this.rows<RuleRow>(`SELECT id, spec, version, created_at, updated_at FROM alarm_rules WHERE id = $1`, [id]);
    return row ? toRuleView(row) : undefined;
  }

  /** The shared counter every instance polls; bumped in the transaction of every rule change. */
  private async bumpVersion(tx: Tx): Promise<number> {
    const { rows } = await tx.query<{ version: string }>(`UPDATE alarm_rules_version SET version = version + 1 WHERE id = 1 RETURNING version`);
    return Number(rows[0].version);
  }

  async insertRule(tx: Tx, spec: AlarmRuleSpec): Promise<RuleView> {
    const version = await this.bumpVersion(tx);
    const { rows } = await tx.query<RuleRow>(
      `INSERT INTO alarm_rules (metric, spec, version) VALUES ($1, $2, $3) RETURNING id, spec, version, created_at, updated_at`,
      [spec.metric, JSON.stringify(spec), version],
    );
    return toRuleView(rows[0]);
  }

  /**
   * Replaces a rule and forgets its evaluation state. The rule row is locked
   * first: an evaluation that locks it afterwards (FOR SHARE, for new pairs)
   * sees the new version, and one that got its state rows first makes this
   * wait until it has committed.
   */
  async updateRule(tx: Tx, id: number, spec: AlarmRuleSpec): Promise<RuleView | undefined> {
    const version = await this.bumpVersion(tx);
    const { rows } = await tx.query<RuleRow>(
      `UPDATE alarm_rules SET metric = $2, spec = $3, version = $4, updated_at = now() WHERE id = $1
       RETURNING id, spec, version, created_at, updated_at`,
      [id, spec.metric, JSON.stringify(spec), version],
    );
    if (rows.length === 0) return undefined;
    await tx.query(`DELETE FROM alarm_state WHERE rule_id = $1`, [id]);
    return toRuleView(rows[0]);
  }

  async deleteRule(tx: Tx, id: number): Promise<RuleView | undefined> {
    await this.bumpVersion(tx);
    const { rows } = await tx.query<RuleRow>(`DELETE FROM alarm_rules WHERE id = $1 RETURNING id, spec, version, created_at, updated_at`, [id]);
    if (rows.length === 0) return undefined;
    await tx.query(`DELETE FROM alarm_state WHERE rule_id = $1`, [id]);
    return toRuleView(rows[0]);
  }

  // ---- evaluation state --------------------------------------------------

  /**
   * Locks and reads the state of the given pairs that exist, with the current
   * version of their rule. Rows are locked in (rule, device) order so two
   * instances evaluating overlapping pairs cannot deadlock.
   */
  async lockStates(tx: Tx, ruleIds: number[], deviceIds: string[]): Promise<StoredState[]> {
    const { rows } = await tx.query<{
      rule_id: string;
      device_id: string;
      last_ts: string | null;
      hold_since: string | null;
      clear_since: string | null;
      open: boolean;
      version: string;
    }>(
      `SELECT s.rule_id, s.device_id, s.last_ts, s.hold_since, s.clear_since, s.open, r.version
         FROM unnest($1::bigint[], $2::text[]) AS u(rule_id, device_id)
         JOIN alarm_state s ON s.rule_id = u.rule_id AND s.device_id = u.device_id
         JOIN alarm_rules r ON r.id = s.rule_id
        ORDER BY s.rule_id, s.device_id
          FOR UPDATE OF s`,
      [ruleIds, deviceIds],
    );
    return rows.map((r) => ({
      ruleId: Number(r.rule_id),
      deviceId: r.device_id,
      lastTs: num(r.last_ts),
      holdSince: num(r.hold_since),
      clearSince: num(r.clear_since),
      open: r.open,
      ruleVersion: Number(r.version),
    }));
  }

  /** Current versions of rules, share-locked until the transaction ends (a concurrent change waits). */
  async lockRuleVersions(tx: Tx, ruleIds: number[]): Promise<Map<number, number>> {
    const { rows } = await tx.query<{ id: string; version: string }>(`SELECT id, version FROM alarm_rules WHERE id = ANY($1::bigint[]) ORDER BY id FOR SHARE`, [
      ruleIds,
    ]);
    return new Map(rows.map((r) => [Number(r.id), Number(r.version)]));
  }

  async createStates(tx: Tx, ruleIds: number[], deviceIds: string[]): Promise<void> {
    await tx.query(`INSERT INTO alarm_state (rule_id, device_id) SELECT * FROM unnest($1::bigint[], $2::text[]) ORDER BY 1, 2 ON CONFLICT DO NOTHING`, [
      ruleIds,
      deviceIds,
    ]);
  }

  async writeStates(tx: Tx, states: readonly StoredState[]): Promise<void> {
    if (states.length === 0) return;
    await tx.query(
      `UPDATE alarm_state s
          SET last_ts = u.last_ts, hold_since = u.hold_since, clear_since = u.clear_since, open = u.open
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::boolean[])
           AS u(rule_id, device_id, last_ts, hold_since, clear_since, open)
        WHERE s.rule_id = u.rule_id AND s.device_id = u.device_id`,
      [
        states.map((s) => s.ruleId),
        states.map((s) => s.deviceId),
        states.map((s) => s.lastTs),
        states.map((s) => s.holdSince),
        states.map((s) => s.clearSince),
        states.map((s) => s.open),
      ],
    );
  }

  // ---- alarms ------------------------------------------------------------

  /** Inserts active alarms; a pair that already has an open alarm keeps it (and is left out of the answer). */
  async raise(tx: Tx, items: ReadonlyArray<{ rule: AlarmRule; deviceId: string; ts: number; value: number }>): Promise<AlarmView[]> {
    if (items.length === 0) return [];
    const { rows } = await tx.query<AlarmRow>(
      `INSERT INTO alarms (rule_id, device_id, metric, severity, status, raised_at, value)
       SELECT u.rule_id, u.device_id, u.metric, u.severity, 'active', ${MS} u.ts, u.value
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::float8[]) AS u(rule_id, device_id, metric, severity, ts, value)
       ON CONFLICT (rule_id, device_id) WHERE status <> 'cleared' DO NOTHING
       RETURNING ${ALARM_COLUMNS}`,
      [
        items.map((i) => i.rule.id),
        items.map((i) => i.deviceId),
        items.map((i) => i.rule.metric),
        items.map((i) => i.rule.severity),
        items.map((i) => i.ts),
        items.map((i) => i.value),
      ],
    );
    return rows.map(toAlarmView);
  }

  /** Clears the open alarm of each pair at the given sample time. */
  async clear(tx: Tx, items: ReadonlyArray<{ ruleId: number; deviceId: string; ts: number; value: number }>): Promise<AlarmView[]> {
    if (items.length === 0) return [];
    const { rows } = await tx.query<AlarmRow>(
      `UPDATE alarms a SET status = 'cleared', cleared_at = ${MS} u.ts, clear_value = u.value
         FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::float8[]) AS u(rule_id, device_id, ts, value)
        WHERE a.rule_id = u.rule_id AND a.device_id = u.device_id AND a.status <> 'cleared'
       RETURNING ${ALARM_COLUMNS.split(', ')
         .map((c) => `a.${c}`)
         .join(', ')}`,
      [items.map((i) => i.ruleId), items.map((i) => i.deviceId), items.map((i) => i.ts), items.map((i) => i.value)],
    );
    return rows.map(toAlarmView);
  }

  /** A changed or deleted rule's open alarms are cleared now (wall-clock time). */
  async clearRuleAlarms(tx: Tx, ruleId: number): Promise<AlarmView[]> {
    const { rows } = await tx.query<AlarmRow>(
      `UPDATE alarms SET status = 'cleared', cleared_at = now() WHERE rule_id = $1 AND status <> 'cleared' RETURNING ${ALARM_COLUMNS}`,
      [ruleId],
    );
    return rows.map(toAlarmView);
  }

  /**
   * Acknowledges an active alarm. Returns the alarm and whether this call
   * changed it (an acknowledged or cleared alarm is returned as it is);
   * undefined for an unknown id.
   */
  async acknowledge(id: number): Promise<{ alarm: AlarmView; changed: boolean } | undefined> {
    const [row] = await this.rows<AlarmRow & { changed: boolean }>(
      `WITH acked AS (
         UPDATE alarms SET status = 'acknowledged', acknowledged_at = now() WHERE id = $1 AND status = 'active' RETURNING ${ALARM_COLUMNS}
       )
       SELECT ${ALARM_COLUMNS}, true AS changed FROM acked
       UNION ALL
       SELECT ${ALARM_COLUMNS}, false AS changed FROM alarms WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM acked)`,
      [id],
    );
    return row ? { alarm: toAlarmView(row), changed: row.changed } : undefined;
  }

  async listAlarms(filter: { status?: AlarmStatus; deviceId?: string; limit: number }): Promise<AlarmView[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status) {
      params.push(filter.status);
      where.push(`status = $${params.length}`);
    }
    if (filter.deviceId) {
      params.push(filter.deviceId);
      where.push(`device_id = $${params.length}`);
    }
    params.push(filter.limit);
    const rows = await this.rows<AlarmRow>(
      `SELECT ${ALARM_COLUMNS} FROM alarms ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY raised_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toAlarmView);
  }

  async openCountsBySeverity(): Promise<Map<string, number>> {
    const rows = await this.rows<{ severity: string; n: number }>(
      `SELECT severity, count(*)::int AS n FROM alarms WHERE status <> 'cleared' GROUP BY severity`,
    );
    return new Map(rows.map((r) => [r.severity, r.n]));
  }

  // ---- webhook outbox ----------------------------------------------------

  async enqueue(tx: Tx, events: ReadonlyArray<{ url: string; body: string }>): Promise<void> {
    if (events.length === 0) return;
    await tx.query(`INSERT INTO alarm_outbox (url, body) SELECT * FROM unnest($1::text[], $2::text[])`, [events.map((e) => e.url), events.map((e) => e.body)]);
  }

  /**
   * Claims up to `limit` due events for `leaseS` seconds: SKIP LOCKED lets
   * every instance claim at the same time without taking the same row, and
   * the lease (next_attempt_at pushed forward) keeps a row away from other
   * senders while this one is sending it, or until the lease runs out if this
   * instance dies mid-send.
   */
  async claimDue(limit: number, leaseS: number): Promise<OutboxRow[]> {
    const rows = await this.rows<{ id: string; url: string; body: string; attempts: number; created_at: Date }>(
      `UPDATE alarm_outbox o SET next_attempt_at = now() + make_interval(secs => $2), attempts = o.attempts + 1
        WHERE o.id IN (
          SELECT id FROM alarm_outbox
           WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= now()
           ORDER BY next_attempt_at, seq
           LIMIT $1
             FOR UPDATE SKIP LOCKED)
       RETURNING o.id, o.url, o.body, o.attempts, o.created_at`,
      [limit, leaseS],
    );
    return rows.map((r) => ({ id: r.id, url: r.url, body: r.body, attempts: r.attempts, createdAt: r.created_at }));
  }

  async markSent(ids: readonly string[]): Promise<void> {
    await this.rows(`UPDATE alarm_outbox SET sent_at = now(), last_error = NULL WHERE id = ANY($1::uuid[])`, [ids]);
  }

  async markRetry(id: string, delayMs: number, error: string): Promise<void> {
    await this.rows(`UPDATE alarm_outbox SET next_attempt_at = now() + $2 * interval '1 millisecond', last_error = $3 WHERE id = $1`, [id, delayMs, error]);
  }

  async markFailed(id: string, error: string): Promise<void> {
    await this.rows(`UPDATE alarm_outbox SET failed_at = now(), last_error = $2 WHERE id = $1`, [id, error]);
  }

  /** Delivered or abandoned events are kept a week for inspection. */
  async pruneOutbox(): Promise<void> {
    await this.rows(`DELETE FROM alarm_outbox WHERE sent_at < now() - interval '7 days' OR failed_at < now() - interval '7 days'`);
  }
}
