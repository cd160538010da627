// Answer schemas of the query API for the OpenAPI document. Each class
// implements the type the route really returns, so a field renamed or retyped
// there fails the type check here instead of leaving the documentation behind.
import { ApiExtraModels, ApiProperty, ApiPropertyOptional, getSchemaPath } from '@nestjs/swagger';
import type { CacheClassStats } from '../cache/cache.service';
import { CACHE_CLEAR_PATTERN } from './query-params';
import type { LatestAnswer } from './telemetry-query.service';
import type { DashboardMetrics, DeviceRow, DeviceStats, HourlyBucket, MetricStats, SampleItem } from '../storage/telemetry-queries';

const ISO = { type: 'string', format: 'date-time' } as const;

export class DeviceModel implements DeviceRow {
  @ApiProperty({ example: 'dev-1' })
  id!: string;

  @ApiProperty({ ...ISO, description: 'time of the first accepted sample' })
  firstSeen!: string;

  @ApiProperty({ ...ISO, description: 'time of the last accepted sample' })
  lastSeen!: string;
}

export class DeviceListModel {
  @ApiProperty({ type: [DeviceModel], description: 'ordered by id' })
  items!: DeviceModel[];

  @ApiProperty({ description: 'number of devices in all (for paging)', example: 1 })
  total!: number;
}

export class LatestModel implements LatestAnswer {
  @ApiProperty({ example: 'dev-1' })
  deviceId!: string;

  @ApiProperty({ ...ISO, nullable: true, description: 'time of the newest point among the metrics; null when the device has none' })
  ts!: string | null;

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'number' },
    description: 'the newest value of each metric, by metric name',
    example: { temperature: 21.5, humidity: 40.2 },
  })
  metrics!: Record<string, number>;
}

export class MetricStatsModel implements MetricStats {
  @ApiProperty({ description: 'samples', example: 1440 })
  count!: number;

  @ApiProperty({ example: 18.2 })
  min!: number;

  @ApiProperty({ example: 24.9 })
  max!: number;

  @ApiProperty({ example: 21.3 })
  avg!: number;
}

@ApiExtraModels(MetricStatsModel)
export class DeviceStatsModel implements DeviceStats {
  @ApiProperty({ example: 'dev-1' })
  deviceId!: string;

  @ApiProperty(ISO)
  firstSeen!: string;

  @ApiProperty(ISO)
  lastSeen!: string;

  @ApiProperty({ description: 'samples over the current hour and the 23 before it, all metrics', example: 2880 })
  sampleCount!: number;

  @ApiProperty({
    type: 'object',
    additionalProperties: { $ref: getSchemaPath(MetricStatsModel) },
    description: 'per metric name, over the same 24 hours',
  })
  metrics!: Record<string, MetricStatsModel>;
}

export class HourlyBucketModel implements HourlyBucket {
  @ApiProperty({ ...ISO, description: 'start of the UTC hour' })
  bucket!: string;

  @ApiProperty({ example: 60 })
  count!: number;

  @ApiProperty({ example: 20.1 })
  min!: number;

  @ApiProperty({ example: 22.4 })
  max!: number;

  @ApiProperty({ example: 21.2 })
  avg!: number;
}

export class HourlyModel {
  @ApiProperty({ example: 'dev-1' })
  deviceId!: string;

  @ApiProperty({ example: 'temperature' })
  metric!: string;

  @ApiProperty({ type: [HourlyBucketModel], description: 'hours that have samples, oldest first' })
  buckets!: HourlyBucketModel[];
}

export class SampleModel implements SampleItem {
  @ApiProperty(ISO)
  ts!: string;

  @ApiProperty({ example: 'temperature' })
  metric!: string;

  @ApiProperty({ example: 21.5 })
  value!: number;
}

export class SampleListModel {
  @ApiProperty({ type: [SampleModel], description: 'newest first' })
  items!: SampleModel[];
}

export class TopDeviceModel {
  @ApiProperty({ example: 'dev-1' })
  id!: string;

  @ApiProperty({ description: 'samples over the current hour and the 23 before it', example: 2880 })
  samples!: number;
}

export class DashboardModel implements DashboardMetrics {
  @ApiProperty({ description: 'devices known', example: 100 })
  devices!: number;

  @ApiProperty({ description: 'devices heard from in the last 5 minutes', example: 97 })
  activeDevices!: number;

  @ApiProperty({ example: 18000 })
  samplesLastHour!: number;

  @ApiProperty({ example: 432000 })
  samplesLast24h!: number;

  @ApiProperty({ description: 'samplesLastHour / 3600, two decimals', example: 5 })
  ingestRatePerSec!: number;

  @ApiProperty({ type: [TopDeviceModel], description: 'the 10 devices with the most samples' })
  topDevices!: TopDeviceModel[];
}

export class CacheClassStatsModel implements CacheClassStats {
  @ApiProperty({ description: 'answers served from the cache since start-up (this instance)', example: 120 })
  hits!: number;

  @ApiProperty({ description: 'answers loaded from PostgreSQL since start-up (this instance)', example: 8 })
  misses!: number;

  @ApiProperty({ description: 'hits / (hits + misses); 0 before the first request', example: 0.9375 })
  hitRatio!: number;
}

export class CacheClassesModel {
  @ApiProperty({ type: () => CacheClassStatsModel })
  latest!: CacheClassStatsModel;

  @ApiProperty({ type: () => CacheClassStatsModel })
  dashboard!: CacheClassStatsModel;

  @ApiProperty({ type: () => CacheClassStatsModel })
  deviceStats!: CacheClassStatsModel;

  @ApiProperty({ type: () => CacheClassStatsModel })
  hourly!: CacheClassStatsModel;
}

export class CacheStatsModel {
  @ApiProperty({ enum: ['redis', 'memory'], description: 'memory: no REDIS_URL, or Redis is unreachable' })
  backend!: 'redis' | 'memory';

  @ApiProperty({ description: 'keys under telemetry:* in the cache', example: 42 })
  keys!: number;

  @ApiProperty({ description: "Redis's used_memory, or the in-process store's size, in bytes", example: 1048576 })
  memoryBytes!: number;

  @ApiProperty({ type: () => CacheClassesModel })
  caches!: CacheClassesModel;
}

export class CacheClearBody {
  @ApiPropertyOptional({
    description: 'glob of the keys to delete; absent: every cache class (latest, stats, hourly, dashboard)',
    pattern: CACHE_CLEAR_PATTERN.source,
    example: 'telemetry:latest:*',
  })
  pattern?: string;
}

export class CacheClearedModel {
  @ApiProperty({ description: 'keys deleted', example: 12 })
  cleared!: number;
}
