// Time-series routes (docs/api.md Time series): bucketed series of one device or of
// several, and the CSV export of a device's raw samples.
import { Controller, Get, Param, Query, Res } from '@nestjs/common';
import { ApiBadRequestResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiParam, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { parseDeviceId } from './query-params';
import { parseCsvQuery, parseFleetSeriesQuery, parseSeriesQuery } from './series-params';
import { SeriesService } from './series.service';

const ERROR_SCHEMA = {
  type: 'object',
  properties: { statusCode: { type: 'integer' }, message: { type: 'string' } },
  required: ['statusCode', 'message'],
};
const numberColumn = { type: 'array', items: { type: 'number', nullable: true } };
const SERIES_SCHEMA = {
  type: 'object',
  description: 'One entry per metric; arrays are parallel to t and present for each requested aggregate.',
  additionalProperties: {
    type: 'object',
    properties: {
      t: { type: 'array', items: { type: 'string', format: 'date-time' }, description: 'bucket starts, ascending' },
      count: numberColumn,
      sum: numberColumn,
      min: numberColumn,
      max: numberColumn,
      avg: numberColumn,
      first: numberColumn,
      last: numberColumn,
    },
    required: ['t'],
  },
};
const COMMON_ANSWER = {
  interval: { type: 'string', example: '1h' },
  tz: { type: 'string', example: 'Europe/Paris' },
  from: { type: 'string', format: 'date-time' },
  to: { type: 'string', format: 'date-time' },
  series: SERIES_SCHEMA,
};

/** Query parameters shared by both series routes. */
function SeriesQueryDocs(aggs: string): MethodDecorator {
  return (target, key, descriptor) => {
    const decorators = [
      ApiQuery({ name: 'metric', required: false, description: 'comma-separated metric names; absent: every metric' }),
      ApiQuery({ name: 'from', required: false, description: 'ISO-8601; default: 24 h before `to`. A bucket is answered when its start is in [from, to)' }),
      ApiQuery({ name: 'to', required: false, description: 'ISO-8601; default: now' }),
      ApiQuery({ name: 'interval', required: false, description: 'Nm (1–1440), Nh (1–168), 1d, 1w or 1mo; default 1h' }),
      ApiQuery({ name: 'tz', required: false, description: 'IANA time zone the buckets are aligned in; default UTC' }),
      ApiQuery({ name: 'agg', required: false, description: `comma-separated, any of ${aggs}; default count,min,max,avg` }),
      ApiQuery({ name: 'fill', required: false, enum: ['none', 'null'], description: 'null: list empty buckets too (count 0, null elsewhere); default none' }),
    ];
    for (const d of decorators) d(target, key, descriptor);
  };
}

@ApiTags('time series')
@Controller('api')
export class SeriesController {
  constructor(private readonly service: SeriesService) {}

  @Get('devices/:id/series')
  @ApiOperation({ summary: "A device's metrics in buckets of any interval, aligned in any time zone" })
  @ApiParam({ name: 'id', description: 'device id' })
  @SeriesQueryDocs('count, sum, min, max, avg, first, last')
  @ApiOkResponse({
    description: 'columnar buckets per metric',
    schema: {
      type: 'object',
      properties: { deviceId: { type: 'string' }, ...COMMON_ANSWER },
      required: ['deviceId', 'interval', 'tz', 'from', 'to', 'series'],
    },
  })
  @ApiBadRequestResponse({ description: 'invalid parameter, or more than 10000 buckets', schema: ERROR_SCHEMA })
  @ApiNotFoundResponse({ description: 'unknown device', schema: ERROR_SCHEMA })
  series(@Param('id') id: string, @Query() query: unknown) {
    const deviceId = parseDeviceId(id);
    return this.service.deviceSeries(deviceId, parseSeriesQuery(query));
  }

  @Get('series')
  @ApiOperation({ summary: 'The same buckets aggregated over several devices (default: every device)' })
  @ApiQuery({ name: 'devices', required: false, description: 'comma-separated device ids; absent: every device' })
  @SeriesQueryDocs('count, sum, min, max, avg')
  @ApiOkResponse({
    description: 'columnar buckets per metric over the devices',
    schema: {
      type: 'object',
      properties: { devices: { type: 'array', items: { type: 'string' } }, ...COMMON_ANSWER },
      required: ['devices', 'interval', 'tz', 'from', 'to', 'series'],
    },
  })
  @ApiBadRequestResponse({ description: 'invalid parameter, or more than 10000 buckets', schema: ERROR_SCHEMA })
  @ApiNotFoundResponse({ description: 'a listed device does not exist', schema: ERROR_SCHEMA })
  fleet(@Query() query: unknown) {
    return this.service.fleetSeries(parseFleetSeriesQuery(query));
  }

  @Get('devices/:id/samples.csv')
  @ApiOperation({ summary: "A device's raw samples as CSV (ts,metric,value), oldest first, streamed without a row limit" })
  @ApiParam({ name: 'id', description: 'device id' })
  @ApiQuery({ name: 'metric', required: false, description: 'one metric; absent: every metric' })
  @ApiQuery({ name: 'from', required: false, description: 'ISO-8601, inclusive; default: everything stored' })
  @ApiQuery({ name: 'to', required: false, description: 'ISO-8601, exclusive; default: everything stored' })
  @ApiProduces('text/csv')
  @ApiOkResponse({
    description: 'header ts,metric,value then one line per sample',
    schema: { type: 'string', example: 'ts,metric,value\n2026-11-21T10:00:00.000Z,temperature,21.5\n' },
  })
  @ApiBadRequestResponse({ description: 'invalid parameter', schema: ERROR_SCHEMA })
  @ApiNotFoundResponse({ description: 'unknown device', schema: ERROR_SCHEMA })
  async csv(@Param('id') id: string, @Query() query: unknown, @Res() reply: FastifyReply): Promise<void> {
    const deviceId = parseDeviceId(id);
    const { metric, from, to } = parseCsvQuery(query);
    const stream = await this.service.samplesCsv(deviceId, metric, from, to);
    await reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${deviceId}.csv"`).send(stream);
  }
}
