// Read-side SQL for the REST API and the WebSocket gateway. Every query is served by an index: the
// samples primary key (device_id, metric, ts) in each daily partition, the
// hourly_aggregates primary key (device_id, metric, bucket) and its bucket
// index, the partial index of unfolded minute rows, devices' keys. Time-range
// reads name ts in their WHERE clause so PostgreSQL prunes the partitions
// outside the range. The hourly tier is read through the view hourly_parts
// (folded hours plus the minutes not folded yet; see hourly-folder.ts).
// A device's metric names come from a skip scan (a recursive CTE) over the
// hourly tier's key, not the samples key: every stored sample is counted
// there, and hourly_aggregates is not partitioned (the unfolded minutes are
// few), so finding the names costs about one index descent per metric rather
// than one per metric and partition (measured on 39 partitions: 694 buffers
// and 1.6 ms for `latest` the old way; docs/scaling.md).
// PostgreSQL's bigint/numeric arrive as strings from pg: converted here.
import { Injectable } from '@nestjs/common';
import type { LatestPoints } from '../telemetry/sample';
import { DatabaseService } from './database.service';

export interface DeviceRow {
  id: string;
  firstSeen: string;
  lastSeen: string;
}
export interface MetricStats {
  count: number;
  min: number;
  max: number;
  avg: number;
}
export interface DeviceStats {
  deviceId: string;
  firstSeen: string;
  lastSeen: string;
  sampleCount: number;
  metrics: Record<string, MetricStats>;
}
export interface HourlyBucket {
  bucket: string;
  count: number;
  min: number;
  max: number;
  avg: number;
}
export interface SampleItem {
  ts: string;
  metric: string;
  value: number;
}
export interface DashboardMetrics {
  devices: number;
  activeDevices: number;
  samplesLastHour: number;
  samplesLast24h: number;
  ingestRatePerSec: number;
  topDevices: Array<{ id: string; samples: number }>;
}

/** A device counts as active when it was heard from within this window. */
export const ACTIVE_WINDOW_MINUTES = 5;

/**
 * Every metric a device has stored: a skip scan over the hourly tier's key
 * (the folded hours and the unfolded minutes, both indexed by device and metric).
 */
export const DEVICE_METRICS_CTE = `
  metrics AS (
    WITH RECURSIVE m(metric) AS (
      (SELECT metric FROM hourly_parts WHERE device_id = $1 ORDER BY metric LIMIT 1)
      UNION ALL
      SELECT (SELECT h.metric FROM hourly_parts h WHERE h.device_id = $1 AND h.metric > m.metric ORDER BY h.metric LIMIT 1)
      FROM m WHERE m.metric IS NOT NULL
    )
    SELECT metric FROM m WHERE metric IS NOT NULL
  )`;

const iso = (d: Date) => d.toISOString();

@Injectable()
export class TelemetryQueries {
  constructor(private readonly db: DatabaseService) {}

  /** `status` filters on online/offline (served by the (status, id) index); total counts the filtered set. */
  async listDevices(limit: number, offset: number, status?: 'online' | 'offline'): Promise<{ items: Array<DeviceRow & { status: string }>; total: number }> {
    const where = status ? `WHERE status = $3` : '';
    const filter = status ? [status] : [];
    const [rows, [{ total }]] = await Promise.all([
      this.db.query<{ id: string; first_seen: Date; last_seen: Date; status: string }>(
        `SELECT id, first_seen, last_seen, status FROM devices ${where} ORDER BY id LIMIT $1 OFFSET $2`,
        [limit, offset, ...filter],
      ),
      this.db.query<{ total: number }>(`SELECT count(*)::int AS total FROM devices ${status ? 'WHERE status = $1' : ''}`, filter),
    ]);
    return { items: rows.map((r) => ({ id: r.id, firstSeen: iso(r.first_seen), lastSeen: iso(r.last_seen), status: r.status })), total };
  }

  async findDevice(id: string): Promise<DeviceRow | null> {
    const [row] = await this.db.query<{ id: string; first_seen: Date; last_seen: Date }>(`SELECT id, first_seen, last_seen FROM devices WHERE id = $1`, [id]);
    return row ? { id: row.id, firstSeen: iso(row.first_seen), lastSeen: iso(row.last_seen) } : null;
  }

  /** Newest point of each metric of a device. */
  async latest(deviceId: string): Promise<LatestPoints> {
    const rows = await this.db.query<{ metric: string; ts: Date; value: number }>(
      `WITH ${DEVICE_METRICS_CTE}
       SELECT m.metric, l.ts, l.value FROM metrics m
       CROSS JOIN LATERAL (
         SELECT ts, value FROM samples s WHERE s.device_id = $1 AND s.metric = m.metric ORDER BY ts DESC LIMIT 1
       ) l`,
      [deviceId],
    );
    const points: LatestPoints = Object.create(null);
    for (const r of rows) points[r.metric] = { ts: r.ts.getTime(), value: r.value };
    return points;
  }

  /** Per-metric count/min/max/avg over the current hour and the 23 before it. */
  async stats(device: DeviceRow): Promise<DeviceStats> {
    const rows = await this.db.query<{ metric: string; count: string; min: number; max: number; sum: number }>(
      `SELECT metric, sum(count) AS count, min(min) AS min, max(max) AS max, sum(sum) AS sum
       FROM hourly_parts
       WHERE device_id = $1 AND bucket >= date_trunc('hour', now(), 'UTC') - interval '23 hours'
       GROUP BY metric ORDER BY metric`,
      [device.id],
    );
    const metrics: Record<string, MetricStats> = Object.create(null);
    let sampleCount = 0;
    for (const r of rows) {
      const count = Number(r.count);
      sampleCount += count;
      metrics[r.metric] = { count, min: r.min, max: r.max, avg: r.sum / count };
    }
    return { deviceId: device.id, firstSeen: device.firstSeen, lastSeen: device.lastSeen, sampleCount, metrics };
  }

  /** Hourly buckets whose start lies in [hour of `from`, `to`). */
  async hourly(deviceId: string, metric: string, from: Date, to: Date): Promise<HourlyBucket[]> {
    const rows = await this.db.query<{ bucket: Date; count: string; min: number; max: number; sum: number }>(
      `SELECT bucket, sum(count) AS count, min(min) AS min, max(max) AS max, sum(sum) AS sum FROM hourly_parts
       WHERE device_id = $1 AND metric = $2 AND bucket >= date_trunc('hour', $3::timestamptz, 'UTC') AND bucket < $4
       GROUP BY bucket ORDER BY bucket`,
      [deviceId, metric, from.toISOString(), to.toISOString()],
    );
    return rows.map((r) => {
      const count = Number(r.count);
      return { bucket: iso(r.bucket), count, min: r.min, max: r.max, avg: r.sum / count };
    });
  }

  /** Samples in [from, to), newest first. */
  async samples(deviceId: string, metric: string | undefined, from: Date, to: Date, limit: number): Promise<SampleItem[]> {
    const params = [deviceId, from.toISOString(), to.toISOString(), limit];
    const rows = metric
      ? await this.db.query<{ ts: Date; metric: string; value: number }>(
          `SELECT ts, metric, value FROM samples
           WHERE device_id = $1 AND metric = $5 AND ts >= $2 AND ts < $3 ORDER BY ts DESC LIMIT $4`,
          [...params, metric],
        )
      : // Newest `limit` of each metric (index range scans), then the newest `limit` of those.
        await this.db.query<{ ts: Date; metric: string; value: number }>(
          `WITH ${DEVICE_METRICS_CTE}
           SELECT l.ts, m.metric, l.value FROM metrics m
           CROSS JOIN LATERAL (
             SELECT ts, value FROM samples s
             WHERE s.device_id = $1 AND s.metric = m.metric AND s.ts >= $2 AND s.ts < $3
             ORDER BY ts DESC LIMIT $4
           ) l
           ORDER BY l.ts DESC, m.metric LIMIT $4`,
          params,
        );
    return rows.map((r) => ({ ts: iso(r.ts), metric: r.metric, value: r.value }));
  }

  /**
   * Fleet-wide figures from the hourly rollups (never a scan of samples). The
   * last hour / 24 h are the rollup buckets covering them, with the oldest,
   * partly covered bucket pro-rated.
   */
  async dashboard(): Promise<DashboardMetrics> {
    const [counts] = await this.db.query<{ devices: number; active: number; last_hour: number; last_day: number }>(
      `WITH h AS (SELECT date_trunc('hour', now(), 'UTC') AS cur,
                         extract(epoch FROM now() - date_trunc('hour', now(), 'UTC')) / 3600 AS elapsed),
       b AS (
         SELECT a.bucket, sum(a.count)::float8 AS n FROM hourly_parts a, h
         WHERE a.bucket >= h.cur - interval '24 hours' AND a.bucket <= h.cur GROUP BY a.bucket
       )
       SELECT
         (SELECT count(*)::int FROM devices) AS devices,
         (SELECT count(*)::int FROM devices WHERE last_seen > now() - interval '${ACTIVE_WINDOW_MINUTES} minutes') AS active,
         coalesce((SELECT sum(CASE WHEN b.bucket = h.cur THEN b.n WHEN b.bucket = h.cur - interval '1 hour' THEN b.n * (1 - h.elapsed) ELSE 0 END) FROM b, h), 0)::float8 AS last_hour,
         coalesce((SELECT sum(CASE WHEN b.bucket = h.cur - interval '24 hours' THEN b.n * (1 - h.elapsed) ELSE b.n END) FROM b, h), 0)::float8 AS last_day`,
    );
    const top = await this.db.query<{ id: string; samples: string }>(
      `SELECT device_id AS id, sum(count) AS samples FROM hourly_parts
       WHERE bucket >= date_trunc('hour', now(), 'UTC') - interval '23 hours'
       GROUP BY device_id ORDER BY sum(count) DESC, device_id LIMIT 10`,
    );
    const samplesLastHour = Math.round(counts.last_hour);
    return {
      devices: counts.devices,
      activeDevices: counts.active,
      samplesLastHour,
      samplesLast24h: Math.round(counts.last_day),
      ingestRatePerSec: Math.round((samplesLastHour / 3600) * 100) / 100,
      topDevices: top.map((r) => ({ id: r.id, samples: Number(r.samples) })),
    };
  }

  /** Deletes a device and all its rows in one transaction; false when it did not exist. */
  async deleteDevice(id: string): Promise<boolean> {
    return this.db.dataSource.transaction(async (manager) => {
      await manager.query(`DELETE FROM samples WHERE device_id = $1`, [id]);
      await manager.query(`DELETE FROM hourly_aggregates WHERE device_id = $1`, [id]);
      await manager.query(`DELETE FROM device_status_history WHERE device_id = $1`, [id]);
      await manager.query(`DELETE FROM minute_aggregates WHERE device_id = $1`, [id]);
      // Its alarms (open or not) and their evaluation state; webhooks already queued are still sent.
      await manager.query(`DELETE FROM alarm_state WHERE device_id = $1`, [id]);
      await manager.query(`DELETE FROM alarms WHERE device_id = $1`, [id]);
      // Wrapped in SELECT: TypeORM returns [rows, count] for a bare DELETE … RETURNING.
      const [row] = (await manager.query(`WITH d AS (DELETE FROM devices WHERE id = $1 RETURNING id) SELECT count(*)::int AS n FROM d`, [id])) as Array<{
        n: number;
      }>;
      return row.n > 0;
    });
  }
}
