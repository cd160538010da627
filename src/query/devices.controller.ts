import { Controller, Delete, Get, Header, HttpCode, Param, Query, UseGuards } from '@nestjs/common';
import { ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiQuery, ApiTags } from '@nestjs/swagger';
import { ApiAdmin, ApiDeviceIdParam, ApiErrors, ApiIntQuery } from '../http/api-docs';
import { TelemetryQueries } from '../storage/telemetry-queries';
import { parseStatusFilter } from '../status/device-status.controller';
import { AdminKeyGuard } from './admin-key.guard';
import { DeviceListModel, DeviceStatsModel, HourlyModel, LatestModel, SampleListModel } from './api-models';
import { INT_PARAMS, parseDeviceId, parseHourlyQuery, parsePaging, parseSamplesQuery } from './query-params';
import { notFound, TelemetryQueryService } from './telemetry-query.service';
import { METRIC_NAME_PATTERN } from '../telemetry/telemetry-rules';

const TIME = { type: 'string', format: 'date-time' } as const;

@ApiTags('devices')
@Controller('api/devices')
export class DevicesController {
  constructor(
    private readonly service: TelemetryQueryService,
    private readonly queries: TelemetryQueries,
  ) {}

  @Get()
  @ApiOperation({ summary: 'List devices', description: 'Every device that has sent an accepted sample, ordered by id.' })
  @ApiIntQuery('limit', INT_PARAMS.devicesLimit, 'devices per page')
  @ApiIntQuery('offset', INT_PARAMS.devicesOffset, 'devices to skip')
  @ApiQuery({ name: 'status', required: false, enum: ['online', 'offline'], description: 'only devices with this status (total counts them)' })
  @ApiOkResponse({ type: DeviceListModel })
  @ApiErrors(400)
  list(@Query() query: unknown) {
    const { limit, offset } = parsePaging(query);
    return this.queries.listDevices(limit, offset, parseStatusFilter(query));
  }

  @Get(':id/latest')
  @ApiOperation({
    summary: 'Newest value of each metric',
    description: 'Served from the cache key `telemetry:latest:{id}`, written on every committed batch and kept for CACHE_TTL_LATEST_S (default 10 s).',
  })
  @ApiDeviceIdParam()
  @ApiOkResponse({ type: LatestModel })
  @ApiErrors(400, 404)
  @Header('content-type', 'application/json; charset=utf-8')
  latest(@Param('id') id: string): Promise<string> {
    return this.service.latestJson(parseDeviceId(id));
  }

  @Get(':id/stats')
  @ApiOperation({
    summary: 'Per-metric statistics over the last 24 hours',
    description:
      'Count, min, max and average over the current hour and the 23 before it. Cached as `telemetry:stats:{id}` for CACHE_TTL_DEVICE_STATS_S (default 15 min).',
  })
  @ApiDeviceIdParam()
  @ApiOkResponse({ type: DeviceStatsModel })
  @ApiErrors(400, 404)
  stats(@Param('id') id: string) {
    return this.service.stats(parseDeviceId(id));
  }

  @Get(':id/aggregates/hourly')
  @ApiOperation({
    summary: 'Hourly aggregates of one metric',
    description:
      'UTC hour buckets whose start lies in [hour of `from`, `to`), from the hourly rollups. Cached as `telemetry:hourly:{id}:…` for CACHE_TTL_HOURLY_S (default 10 min).',
  })
  @ApiDeviceIdParam()
  @ApiQuery({ name: 'metric', required: true, schema: { type: 'string', pattern: METRIC_NAME_PATTERN.source, example: 'temperature' } })
  @ApiQuery({ name: 'from', required: false, description: 'ISO-8601; default `to` − 24 h', schema: TIME })
  @ApiQuery({ name: 'to', required: false, description: 'ISO-8601; default now; must be after `from`', schema: TIME })
  @ApiOkResponse({ type: HourlyModel })
  @ApiErrors(400, 404)
  hourly(@Param('id') id: string, @Query() query: unknown) {
    const deviceId = parseDeviceId(id);
    const { metric, from, to } = parseHourlyQuery(query);
    return this.service.hourly(deviceId, metric, from, to);
  }

  @Get(':id/samples')
  @ApiOperation({ summary: 'Raw samples, newest first', description: 'Samples with `from` ≤ ts < `to`, at most `limit`.' })
  @ApiDeviceIdParam()
  @ApiQuery({ name: 'metric', required: false, description: 'only this metric; default all', schema: { type: 'string', pattern: METRIC_NAME_PATTERN.source } })
  @ApiQuery({ name: 'from', required: false, description: 'ISO-8601; default 2000-01-01', schema: TIME })
  @ApiQuery({ name: 'to', required: false, description: 'ISO-8601; default now + 1 day (every accepted sample)', schema: TIME })
  @ApiIntQuery('limit', INT_PARAMS.samplesLimit, 'most samples returned')
  @ApiOkResponse({ type: SampleListModel })
  @ApiErrors(400, 404)
  async samples(@Param('id') id: string, @Query() query: unknown) {
    const deviceId = parseDeviceId(id);
    const { metric, from, to, limit } = parseSamplesQuery(query);
    if (!(await this.queries.findDevice(deviceId))) throw notFound(deviceId);
    return { items: await this.queries.samples(deviceId, metric, from, to, limit) };
  }

  @Delete(':id')
  @HttpCode(204)
  @UseGuards(AdminKeyGuard)
  @ApiOperation({ summary: 'Delete a device', description: 'Removes the device, its samples and rollups, and its cache entries.' })
  @ApiAdmin()
  @ApiDeviceIdParam()
  @ApiNoContentResponse({ description: 'deleted' })
  @ApiErrors(400, 404)
  async remove(@Param('id') id: string): Promise<void> {
    await this.service.deleteDevice(parseDeviceId(id));
  }
}
