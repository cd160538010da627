import { Controller, Delete, Get, HttpCode, NotFoundException, Param, Query, UseGuards } from '@nestjs/common';
import { ApiQuery } from '@nestjs/swagger';
import { parseStatusFilter } from '../status/device-status.controller';
import { AdminKeyGuard } from './admin-key.guard';
import { parseDeviceId, parseHourlyQuery, parsePaging, parseSamplesQuery } from './query-params';
import { TelemetryQueries } from './telemetry-queries';
import { TelemetryQueryService } from './telemetry-query.service';

@Controller('api/devices')
export class DevicesController {
  constructor(
    private readonly service: TelemetryQueryService,
    private readonly queries: TelemetryQueries,
  ) {}

  @Get()
  @ApiQuery({ name: 'status', required: false, enum: ['online', 'offline'], description: 'only devices with this status (total counts them)' })
  list(@Query() query: unknown) {
    const { limit, offset } = parsePaging(query);
    return this.queries.listDevices(limit, offset, parseStatusFilter(query));
  }

  @Get(':id/latest')
  latest(@Param('id') id: string) {
    return this.service.latest(parseDeviceId(id));
  }

  @Get(':id/stats')
  stats(@Param('id') id: string) {
    return this.service.stats(parseDeviceId(id));
  }

  @Get(':id/aggregates/hourly')
  hourly(@Param('id') id: string, @Query() query: unknown) {
    const deviceId = parseDeviceId(id);
    const { metric, from, to } = parseHourlyQuery(query);
    return this.service.hourly(deviceId, metric, from, to);
  }

  @Get(':id/samples')
  async samples(@Param('id') id: string, @Query() query: unknown) {
    const deviceId = parseDeviceId(id);
    const { metric, from, to, limit } = parseSamplesQuery(query);
    if (!(await this.queries.findDevice(deviceId))) {
      throw new NotFoundException(`device ${deviceId} not found`);
    }
    return { items: await this.queries.samples(deviceId, metric, from, to, limit) };
  }

  @Delete(':id')
  @HttpCode(204)
  @UseGuards(AdminKeyGuard)
  async remove(@Param('id') id: string): Promise<void> {
    await this.service.deleteDevice(parseDeviceId(id));
  }
}
