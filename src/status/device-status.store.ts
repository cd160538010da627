// All SQL of device status. Every transition is ONE conditional UPDATE …
// RETURNING that also appends the history row: however many instances try
// the same change at once, PostgreSQL lets exactly one of them make it, and
// only the one that got a row back announces it.
import { Injectable } from '@nestjs/common';
import type { DeviceSeen } from '../telemetry/sample';
import { DatabaseService } from '../storage/database.service';
import type { DeviceState, StatusReason } from './status-payload';

/** One change this instance made (and must announce). */
export interface StatusChange {
  deviceId: string;
  status: DeviceState;
  since: string;
  reason: StatusReason;
}

export interface DeviceStatusRow {
  deviceId: string;
  status: DeviceState;
  since: string;
  lastSeen: string;
  reason: StatusReason;
  offlineAfterS: number | null;
}

/** A batch's devices after markOnline: their status now, and their own timeout if any. */
export interface OnlineCheck {
  deviceId: string;
  status: DeviceState;
  offlineAfterS: number | null;
}

const MARK_ONLINE_SQL = `
WITH input AS (
  SELECT id, to_timestamp(first_ms / 1000.0) AS first_at, to_timestamp(last_ms / 1000.0) AS last_at
  FROM unnest($1::text[], $2::float8[], $3::float8[]) AS t(id, first_ms, last_ms)
),
changed AS (
  UPDATE devices d SET status = 'online', status_reason = 'message',
    -- Online from the first message after the device went offline.
    status_since = CASE WHEN d.status_since IS NULL OR i.first_at > d.status_since THEN i.first_at ELSE i.last_at END
  FROM input i
  -- A message received before the device went offline (a Last Will that
  -- overtook the commit of its last samples) does not bring it back.
  -- status_since IS NULL: a row the batch write has just inserted (online by default, not yet announced).
  WHERE d.id = i.id AND (d.status <> 'online' OR d.status_since IS NULL) AND (d.status_since IS NULL OR i.last_at > d.status_since)
  RETURNING d.id, d.status_since
),
history AS (
  INSERT INTO device_status_history (device_id, since, status, reason)
  SELECT id, status_since, 'online', 'message' FROM changed
)
SELECT i.id, c.status_since AS since, (c.id IS NOT NULL) AS changed,
  CASE WHEN c.id IS NOT NULL THEN 'online' ELSE d.status END AS status, d.offline_after_s
FROM input i LEFT JOIN changed c ON c.id = i.id LEFT JOIN devices d ON d.id = i.id`;

const REPORTED_SQL = `
WITH changed AS (
  UPDATE devices d SET status = $2::text, status_since = $3::timestamptz, status_reason = 'will',
    -- Reported online counts as being heard from, or the next sweep would undo it.
    last_seen = CASE WHEN $2::text = 'online' THEN greatest(d.last_seen, $3::timestamptz) ELSE d.last_seen END
  WHERE d.id = $1 AND (d.status <> $2::text OR d.status_since IS NULL) AND (d.status_since IS NULL OR d.status_since <= $3::timestamptz)
  RETURNING d.id, d.status_since
),
history AS (
  INSERT INTO device_status_history (device_id, since, status, reason)
  SELECT id, status_since, $2::text, 'will' FROM changed
)
SELECT id, status_since AS since FROM changed`;

// $1 default timeout (s), $2 most devices per sweep. The UPDATE re-checks the
// deadline on the row it locks: a commit that moved last_seen meanwhile wins.
// The batch write moves last_seen only when it advances by more than a
// second, so the newest message may be up to 1 s younger than last_seen: a
// device is due 1 s after last_seen + timeout (never before its true
// deadline, at most 1 s after it), and since = last_seen + timeout, the
// figures GET …/status shows.
export const SWEEP_SQL = `
WITH due AS (
  (SELECT id FROM devices
   WHERE status = 'online' AND offline_after_s IS NULL AND last_seen < now() - make_interval(secs => $1::int + 1)
   ORDER BY last_seen LIMIT $2)
  UNION ALL
  (SELECT id FROM devices
   WHERE status = 'online' AND offline_after_s IS NOT NULL AND last_seen + make_interval(secs => offline_after_s + 1) < now()
   LIMIT $2)
),
changed AS (
  UPDATE devices d SET status = 'offline', status_reason = 'timeout',
    status_since = d.last_seen + make_interval(secs => coalesce(d.offline_after_s, $1::int))
  FROM due
  WHERE d.id = due.id AND d.status = 'online' AND d.last_seen + make_interval(secs => coalesce(d.offline_after_s, $1::int) + 1) < now()
  RETURNING d.id, d.status_since
),
history AS (
  INSERT INTO device_status_history (device_id, since, status, reason)
  SELECT id, status_since, 'offline', 'timeout' FROM changed
)
SELECT id, status_since AS since FROM changed`;

const iso = (d: Date) => d.toISOString();

@Injectable()
export class DeviceStatusStore {
  constructor(private readonly db: DatabaseService) {}

  /** Sets the batch's devices online where they are not; answers every device's status after it. */
  async markOnline(devices: readonly DeviceSeen[]): Promise<{ changes: StatusChange[]; checks: OnlineCheck[] }> {
    const rows = await this.db.query<{ id: string; since: Date | null; changed: boolean; status: DeviceState | null; offline_after_s: number | null }>(
      MARK_ONLINE_SQL,
      [devices.map((d) => d.deviceId), devices.map((d) => d.firstSeenMs), devices.map((d) => d.lastSeenMs)],
    );
    const changes: StatusChange[] = [];
    const checks: OnlineCheck[] = [];
    for (const r of rows) {
      if (r.status === null) continue; // deleted meanwhile
      checks.push({ deviceId: r.id, status: r.status, offlineAfterS: r.offline_after_s });
      if (r.changed && r.since) changes.push({ deviceId: r.id, status: 'online', since: iso(r.since), reason: 'message' });
    }
    return { changes, checks };
  }

  /** A status the device reported on its status topic (or its Last Will). */
  async applyReported(deviceId: string, status: DeviceState, atMs: number): Promise<StatusChange | undefined> {
    const [row] = await this.db.query<{ id: string; since: Date }>(REPORTED_SQL, [deviceId, status, new Date(atMs).toISOString()]);
    return row ? { deviceId: row.id, status, since: iso(row.since), reason: 'will' } : undefined;
  }

  /** Turns offline the online devices whose deadline has passed (at most `limit` of each kind). */
  async sweep(defaultOfflineAfterS: number, limit: number, query = this.db.query.bind(this.db)): Promise<StatusChange[]> {
    const rows = (await query(SWEEP_SQL, [defaultOfflineAfterS, limit])) as Array<{ id: string; since: Date }>;
    return rows.map((r) => ({ deviceId: r.id, status: 'offline', since: iso(r.since), reason: 'timeout' }));
  }

  async find(deviceId: string): Promise<DeviceStatusRow | undefined> {
    const [row] = await this.db.query<{
      id: string;
      status: DeviceState;
      since: Date | null;
      first_seen: Date;
      last_seen: Date;
      reason: StatusReason | null;
      offline_after_s: number | null;
    }>(`SELECT id, status, status_since AS since, first_seen, last_seen, status_reason AS reason, offline_after_s FROM devices WHERE id = $1`, [deviceId]);
    if (!row) return undefined;
    return {
      deviceId: row.id,
      status: row.status,
      // A device whose first message is still being marked online: it has been known since its first message.
      since: iso(row.since ?? row.first_seen),
      lastSeen: iso(row.last_seen),
      reason: row.reason ?? 'message',
      offlineAfterS: row.offline_after_s,
    };
  }

  /** Changes with `since` in [from, to), newest first. */
  async history(deviceId: string, from: Date, to: Date, limit: number): Promise<Array<{ status: DeviceState; since: string; reason: StatusReason }>> {
    const rows = await this.db.query<{ status: DeviceState; since: Date; reason: StatusReason }>(
      `SELECT status, since, reason FROM device_status_history
       WHERE device_id = $1 AND since >= $2 AND since < $3 ORDER BY since DESC LIMIT $4`,
      [deviceId, from.toISOString(), to.toISOString(), limit],
    );
    return rows.map((r) => ({ status: r.status, since: iso(r.since), reason: r.reason }));
  }

  /** null restores the default. Answers false for an unknown device. */
  async setOfflineAfter(deviceId: string, seconds: number | null): Promise<boolean> {
    // Wrapped in SELECT: TypeORM answers [rows, count] for a bare UPDATE … RETURNING.
    const [row] = await this.db.query<{ n: number }>(
      `WITH u AS (UPDATE devices SET offline_after_s = $2 WHERE id = $1 RETURNING id) SELECT count(*)::int AS n FROM u`,
      [deviceId, seconds],
    );
    return row.n > 0;
  }

  async countOnline(): Promise<number> {
    const [row] = await this.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM devices WHERE status = 'online'`);
    return row.n;
  }

  /** History older than the cutoff goes (RETENTION_DAYS), oldest first in bounded chunks. */
  async prune(cutoff: Date): Promise<number> {
    let total = 0;
    for (;;) {
      const [row] = await this.db.query<{ n: number }>(
        `WITH gone AS (
           DELETE FROM device_status_history WHERE ctid IN (SELECT ctid FROM device_status_history WHERE since < $1 LIMIT 10000)
           RETURNING 1)
         SELECT count(*)::int AS n FROM gone`,
        [cutoff.toISOString()],
      );
      total += row.n;
      if (row.n < 10000) return total;
    }
  }
}
