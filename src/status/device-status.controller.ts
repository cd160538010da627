// REST side of device status (docs/api.md Device status): a device's status and its
// history, and the admin setting of its own timeout.
import { BadRequestException, Body, Controller, Get, NotFoundException, Param, Put, Query, UseGuards } from '@nestjs/common';
import {
  ApiBody,
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiSecurity,
  ApiTags,
  ApiBadRequestResponse,
} from '@nestjs/swagger';
import { z } from 'zod';
import { AdminKeyGuard } from '../query/admin-key.guard';
import { parseDeviceId } from '../query/query-params';
import { DeviceStatusService } from './device-status.service';
import { DeviceStatusStore } from './device-status.store';

const TIME = { type: 'string', format: 'date-time' } as const;
const STATUS = { type: 'string' as const, enum: ['online', 'offline'] };
const REASON = { type: 'string' as const, enum: ['message', 'timeout', 'will'] };
const ERROR = { type: 'object', properties: { statusCode: { type: 'integer' }, message: { type: 'string' } } } as const;
const SETTINGS = { type: 'object', required: ['deviceId', 'offlineAfterS'], properties: { deviceId: { type: 'string' }, offlineAfterS: { type: 'integer' } } };
/** The longest per-device timeout: 30 days, like DEVICE_OFFLINE_AFTER_S. */
export const MAX_OFFLINE_AFTER_S = 30 * 24 * 3600;

const isoTime = (name: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return undefined;
      const ms = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) ? Date.parse(v) : NaN;
      if (Number.isNaN(ms)) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an ISO-8601 date-time, e.g. 2026-11-21T10:00:00Z` });
        return z.NEVER;
      }
      return new Date(ms);
    });

const historyQuery = z.object({
  from: isoTime('from'),
  to: isoTime('to'),
  limit: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '') return 1000;
      if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 10_000) {
        ctx.addIssue({ code: 'custom', message: 'limit must be an integer from 1 to 10000' });
        return z.NEVER;
      }
      return Number(v);
    }),
});

const settingsBody = z.object({
  offlineAfterS: z.union([z.number().int().min(1).max(MAX_OFFLINE_AFTER_S), z.null()]),
});

function parse<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) throw new BadRequestException(result.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '));
  return result.data;
}

/** `?status=online|offline` of GET /api/devices; undefined when absent. */
export function parseStatusFilter(query: unknown): 'online' | 'offline' | undefined {
  const status = (query as { status?: unknown } | undefined)?.status;
  if (status === undefined || status === '') return undefined;
  if (status !== 'online' && status !== 'offline') throw new BadRequestException('status must be online or offline');
  return status;
}

@ApiTags('devices')
@Controller('api/devices')
export class DeviceStatusController {
  constructor(
    private readonly store: DeviceStatusStore,
    private readonly status: DeviceStatusService,
  ) {}

  @Get(':id/status')
  @ApiOperation({
    summary: 'Online/offline status of a device',
    description:
      "online from an accepted message; offline once no message was accepted for DEVICE_OFFLINE_AFTER_S (or the device's own offlineAfterS), or when the device (its Last Will) publishes offline on devices/{id}/status.",
  })
  @ApiParam({ name: 'id', description: 'device id', schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' } })
  @ApiOkResponse({
    schema: {
      type: 'object',
      required: ['deviceId', 'status', 'since', 'lastSeen', 'reason'],
      properties: { deviceId: { type: 'string' }, status: STATUS, since: TIME, lastSeen: TIME, reason: REASON },
    },
  })
  @ApiBadRequestResponse({ schema: ERROR })
  @ApiNotFoundResponse({ schema: ERROR })
  async get(@Param('id') id: string) {
    const deviceId = parseDeviceId(id);
    const row = await this.store.find(deviceId);
    if (!row) throw new NotFoundException(`device ${deviceId} not found`);
    return { deviceId: row.deviceId, status: row.status, since: row.since, lastSeen: row.lastSeen, reason: row.reason };
  }

  @Get(':id/settings')
  @ApiOperation({
    summary: 'Per-device settings',
    description: '`offlineAfterS`: the timeout that applies to this device, in seconds (its own, or DEVICE_OFFLINE_AFTER_S).',
  })
  @ApiParam({ name: 'id', description: 'device id', schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' } })
  @ApiOkResponse({ schema: SETTINGS })
  @ApiBadRequestResponse({ schema: ERROR })
  @ApiNotFoundResponse({ schema: ERROR })
  async getSettings(@Param('id') id: string) {
    const deviceId = parseDeviceId(id);
    const row = await this.store.find(deviceId);
    if (!row) throw new NotFoundException(`device ${deviceId} not found`);
    return { deviceId, offlineAfterS: row.offlineAfterS ?? this.defaultOfflineAfterS };
  }

  @Get(':id/status/history')
  @ApiOperation({
    summary: 'Status changes of a device, newest first',
    description: 'Changes whose `since` lies in [from, to); default: all of them up to now. At most `limit` (1000) items.',
  })
  @ApiParam({ name: 'id', description: 'device id', schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' } })
  @ApiQuery({ name: 'from', required: false, schema: TIME })
  @ApiQuery({ name: 'to', required: false, schema: TIME })
  @ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 } })
  @ApiOkResponse({
    schema: {
      type: 'object',
      required: ['items'],
      properties: {
        items: {
          type: 'array',
          items: { type: 'object', required: ['status', 'since', 'reason'], properties: { status: STATUS, since: TIME, reason: REASON } },
        },
      },
    },
  })
  @ApiBadRequestResponse({ schema: ERROR })
  @ApiNotFoundResponse({ schema: ERROR })
  async history(@Param('id') id: string, @Query() query: unknown) {
    const deviceId = parseDeviceId(id);
    const q = parse(historyQuery, query);
    const from = q.from ?? new Date(0);
    const to = q.to ?? new Date(Date.now() + 1000);
    if (from.getTime() >= to.getTime()) throw new BadRequestException('from must be before to');
    if (!(await this.store.find(deviceId))) throw new NotFoundException(`device ${deviceId} not found`);
    return { items: await this.store.history(deviceId, from, to, q.limit) };
  }

  @Put(':id/settings')
  @UseGuards(AdminKeyGuard)
  @ApiSecurity('x-api-key')
  @ApiOperation({
    summary: 'Per-device settings (admin)',
    description: "`offlineAfterS`: this device's timeout in seconds (1 to 2592000); null restores DEVICE_OFFLINE_AFTER_S. Takes effect at the next sweep.",
  })
  @ApiParam({ name: 'id', description: 'device id', schema: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,64}$' } })
  @ApiBody({
    schema: {
      type: 'object',
      required: ['offlineAfterS'],
      properties: { offlineAfterS: { type: 'integer', minimum: 1, maximum: MAX_OFFLINE_AFTER_S, nullable: true } },
    },
  })
  @ApiOkResponse({ schema: SETTINGS })
  @ApiBadRequestResponse({ schema: ERROR })
  @ApiForbiddenResponse({ schema: ERROR })
  @ApiNotFoundResponse({ schema: ERROR })
  async settings(@Param('id') id: string, @Body() body: unknown) {
    const deviceId = parseDeviceId(id);
    const { offlineAfterS } = parse(settingsBody, body);
    if (!(await this.store.setOfflineAfter(deviceId, offlineAfterS))) throw new NotFoundException(`device ${deviceId} not found`);
    this.status.forget(deviceId);
    return { deviceId, offlineAfterS: offlineAfterS ?? this.defaultOfflineAfterS };
  }

  private get defaultOfflineAfterS(): number {
    return this.status.defaultOfflineAfterS;
  }
}
