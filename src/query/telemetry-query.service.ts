// Cache-aside reads for the query API: each answer comes from the cache class
// named in docs/api.md HTTP API or, on a miss, from one database load per key at a time.
import { Injectable, NotFoundException } from '@nestjs/common';
import { cacheKeys } from '../redis/redis-names';
import { CacheService } from '../cache/cache.service';
import type { DashboardMetrics, DeviceRow, DeviceStats, HourlyBucket } from '../storage/telemetry-queries';
import { TelemetryQueries } from '../storage/telemetry-queries';
import type { LatestPoints } from '../telemetry/sample';

export interface LatestAnswer {
  deviceId: string;
  ts: string | null;
  metrics: Record<string, number>;
}

@Injectable()
export class TelemetryQueryService {
  private readonly latestBodies = new WeakMap<LatestPoints, string>();
  constructor(
    private readonly queries: TelemetryQueries,
    private readonly cache: CacheService,
  ) {}

  private async device(id: string): Promise<DeviceRow> {
    const device = await this.queries.findDevice(id);
    if (!device) throw notFound(id);
    return device;
  }

  /** The newest value of each metric (REST `latest`, WebSocket `subscribed`/`latest`); null for an unknown device. */
  async findLatest(deviceId: string): Promise<LatestAnswer | null> {
    const points = await this.latestPoints(deviceId);
    return points === null ? null : latestAnswer(deviceId, points);
  }

  /** Cached points; null for an unknown device. */
  private latestPoints(deviceId: string): Promise<LatestPoints | null> {
    return this.cache.getLatest(deviceId, async () => ((await this.queries.findDevice(deviceId)) ? this.queries.latest(deviceId) : null));
  }

  /**
   * The REST answer as JSON text. The cache hands out the same points object
   * until they change, so each change is serialised once, not once per request.
   */
  async latestJson(deviceId: string): Promise<string> {
    const points = await this.latestPoints(deviceId);
    if (points === null) throw notFound(deviceId);
    let body = this.latestBodies.get(points);
    if (body === undefined) {
      body = JSON.stringify(latestAnswer(deviceId, points));
      this.latestBodies.set(points, body);
    }
    return body;
  }

  async stats(deviceId: string): Promise<DeviceStats> {
    const stats = await this.cache.getOrLoad<DeviceStats>('device_stats', cacheKeys.stats(deviceId), this.cache.ttl.deviceStatsS, async () =>
      this.queries.stats(await this.device(deviceId)),
    );
    return stats as DeviceStats;
  }

  async hourly(deviceId: string, metric: string, from: Date, to: Date): Promise<{ deviceId: string; metric: string; buckets: HourlyBucket[] }> {
    const key = cacheKeys.hourly(deviceId, metric, from.getTime(), to.getTime());
    const buckets = await this.cache.getOrLoad<HourlyBucket[]>('hourly', key, this.cache.ttl.hourlyS, async () => {
      await this.device(deviceId);
      return this.queries.hourly(deviceId, metric, from, to);
    });
    return { deviceId, metric, buckets: buckets ?? [] };
  }

  async dashboard(): Promise<DashboardMetrics> {
    const value = await this.cache.getOrLoad<DashboardMetrics>('dashboard', cacheKeys.dashboard(), this.cache.ttl.dashboardS, () => this.queries.dashboard());
    return value as DashboardMetrics;
  }

  /**
   * The fleet figures and how many seconds ago they were computed (they are
   * cached for CACHE_TTL_DASHBOARD_S, 5 min by default): the entry's full
   * lifetime minus what it has left.
   */
  async dashboardWithAge(): Promise<{ metrics: DashboardMetrics; ageS: number }> {
    const metrics = await this.dashboard();
    const ttlS = this.cache.ttl.dashboardS;
    const left = await this.cache.ttlOf(cacheKeys.dashboard()).catch(() => -2);
    return { metrics, ageS: left >= 0 ? Math.max(0, Math.min(ttlS, ttlS - left)) : 0 };
  }

  async deleteDevice(deviceId: string): Promise<void> {
    const existed = await this.queries.deleteDevice(deviceId);
    await this.cache.invalidateDevice(deviceId);
    await this.cache.del([cacheKeys.dashboard()]);
    if (!existed) throw notFound(deviceId);
  }
}

/** The one answer for a device that does not exist. */
export function notFound(deviceId: string): NotFoundException {
  return new NotFoundException(`device ${deviceId} not found`);
}

export function latestAnswer(deviceId: string, points: Record<string, { ts: number; value: number }> | null): LatestAnswer {
  // Null prototype: a metric may be named like an Object.prototype member.
  const metrics: Record<string, number> = Object.create(null);
  let newest = -Infinity;
  for (const [name, point] of Object.entries(points ?? {})) {
    metrics[name] = point.value;
    if (point.ts > newest) newest = point.ts;
  }
  return { deviceId, ts: newest === -Infinity ? null : new Date(newest).toISOString(), metrics };
}
