import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, UseGuards, BadRequestException, NotFoundException } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBody,
  ApiCreatedResponse,
  ApiForbiddenResponse,
  ApiNoContentResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiSecurity,
  ApiTags,
} from '@nestjs/swagger';
import { z } from 'zod';
import { AdminKeyGuard } from '../query/admin-key.guard';
import { DEVICE_ID_PATTERN, DEVICE_ID_RULE } from '../telemetry/telemetry-rules';
import { AlarmAnnouncer } from './alarm-announcer';
import { parseRuleSpec } from './alarm-rule';
import { AlarmRules } from './alarm-rules.service';
import { ALARM_LIST_SCHEMA, ALARM_SCHEMA, ERROR_SCHEMA, RULE_LIST_SCHEMA, RULE_SCHEMA, RULE_SPEC_SCHEMA } from './alarm-schemas';
import { ALARM_STATUSES, AlarmStore, type AlarmStatus, type AlarmView, type RuleView } from './alarm-store';

const MAX_ID = Number.MAX_SAFE_INTEGER;

function parseId(raw: string, what: string): number {
  const id = Number(raw);
  if (!/^\d{1,16}$/.test(raw) || id < 1 || id > MAX_ID) throw new BadRequestException(`${what} id must be a positive integer`);
  return id;
}

const alarmQuery = z.object({
  status: z.enum(ALARM_STATUSES as [AlarmStatus, ...AlarmStatus[]], { error: `status must be one of ${ALARM_STATUSES.join(', ')}` }).optional(),
  deviceId: z.string().regex(DEVICE_ID_PATTERN, `deviceId ${DEVICE_ID_RULE}`).optional(),
  limit: z
    .string()
    .regex(/^\d+$/, 'limit must be an integer from 1 to 1000')
    .transform(Number)
    .refine((n) => n >= 1 && n <= 1000, 'limit must be an integer from 1 to 1000')
    .optional(),
});

function parseAlarmQuery(query: unknown): { status?: AlarmStatus; deviceId?: string; limit: number } {
  const cleaned = Object.fromEntries(Object.entries((query ?? {}) as Record<string, unknown>).filter(([, v]) => v !== ''));
  const result = alarmQuery.safeParse(cleaned);
  if (!result.success) throw new BadRequestException(result.error.issues.map((i) => i.message).join('; '));
  return { ...result.data, limit: result.data.limit ?? 100 };
}

const admin = [ApiSecurity('x-api-key'), ApiForbiddenResponse({ description: 'missing or wrong x-api-key, or ADMIN_API_KEY unset', schema: ERROR_SCHEMA })];
const idParam = (what: string) => ApiParam({ name: 'id', description: `${what} id`, schema: { type: 'integer', minimum: 1 } });
const apply =
  (...decorators: MethodDecorator[]): MethodDecorator =>
  (target, key, descriptor) => {
    for (const d of decorators) d(target, key, descriptor);
  };

@ApiTags('alarms')
@Controller('api/alarm-rules')
@UseGuards(AdminKeyGuard)
export class AlarmRulesController {
  constructor(private readonly rules: AlarmRules) {}

  @Post()
  @ApiOperation({ summary: 'Create an alarm rule (admin)' })
  @ApiBody({ schema: RULE_SPEC_SCHEMA })
  @ApiCreatedResponse({ description: 'the rule, with its id', schema: RULE_SCHEMA })
  @ApiBadRequestResponse({ description: 'invalid rule; the message names the field', schema: ERROR_SCHEMA })
  @apply(...admin)
  create(@Body() body: unknown): Promise<RuleView> {
    return this.rules.create(parseRuleSpec(body));
  }

  @Get()
  @ApiOperation({ summary: 'List alarm rules (admin)' })
  @ApiOkResponse({ schema: RULE_LIST_SCHEMA })
  @apply(...admin)
  async list(): Promise<{ items: RuleView[] }> {
    return { items: await this.rules.list() };
  }

  @Get(':id')
  @ApiOperation({ summary: 'One alarm rule (admin)' })
  @idParam('rule')
  @ApiOkResponse({ schema: RULE_SCHEMA })
  @ApiNotFoundResponse({ schema: ERROR_SCHEMA })
  @apply(...admin)
  get(@Param('id') id: string): Promise<RuleView> {
    return this.rules.get(parseId(id, 'rule'));
  }

  @Put(':id')
  @ApiOperation({ summary: 'Replace an alarm rule (admin); its open alarms are cleared and evaluation restarts' })
  @idParam('rule')
  @ApiBody({ schema: RULE_SPEC_SCHEMA })
  @ApiOkResponse({ schema: RULE_SCHEMA })
  @ApiBadRequestResponse({ description: 'invalid rule; the message names the field', schema: ERROR_SCHEMA })
  @ApiNotFoundResponse({ schema: ERROR_SCHEMA })
  @apply(...admin)
  update(@Param('id') id: string, @Body() body: unknown): Promise<RuleView> {
    const ruleId = parseId(id, 'rule');
    return this.rules.update(ruleId, parseRuleSpec(body));
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete an alarm rule (admin); its open alarms are cleared' })
  @idParam('rule')
  @ApiNoContentResponse({ description: 'deleted' })
  @ApiNotFoundResponse({ schema: ERROR_SCHEMA })
  @apply(...admin)
  async remove(@Param('id') id: string): Promise<void> {
    await this.rules.remove(parseId(id, 'rule'));
  }
}

@ApiTags('alarms')
@Controller('api/alarms')
export class AlarmsController {
  constructor(
    private readonly store: AlarmStore,
    private readonly announcer: AlarmAnnouncer,
  ) {}

  @Get()
  @ApiOperation({ summary: 'Alarms, newest first' })
  @ApiQuery({ name: 'status', required: false, enum: ALARM_STATUSES })
  @ApiQuery({ name: 'deviceId', required: false, schema: { type: 'string' } })
  @ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } })
  @ApiOkResponse({ schema: ALARM_LIST_SCHEMA })
  @ApiBadRequestResponse({ schema: ERROR_SCHEMA })
  async list(@Query() query: unknown): Promise<{ items: AlarmView[] }> {
    return { items: await this.store.listAlarms(parseAlarmQuery(query)) };
  }

  @Post(':id/ack')
  @HttpCode(200)
  @UseGuards(AdminKeyGuard)
  @ApiOperation({ summary: 'Acknowledge an alarm (admin); acknowledging again, or a cleared alarm, answers it unchanged' })
  @idParam('alarm')
  @ApiOkResponse({ schema: ALARM_SCHEMA })
  @ApiNotFoundResponse({ schema: ERROR_SCHEMA })
  @apply(...admin)
  async ack(@Param('id') id: string): Promise<AlarmView> {
    const alarmId = parseId(id, 'alarm');
    const result = await this.store.acknowledge(alarmId);
    if (!result) throw new NotFoundException(`alarm ${alarmId} not found`);
    if (result.changed) this.announcer.announce([{ type: 'alarm.acknowledged', alarm: result.alarm, webhookUrl: undefined }]);
    return result.alarm;
  }
}
