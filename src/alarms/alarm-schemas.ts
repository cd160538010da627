// OpenAPI shapes of the alarm routes (request body and answers), for
// @nestjs/swagger. Kept apart so the controllers read as routes.
import type { ApiBody } from '@nestjs/swagger';
import { BAND_OPS, COMPARISON_OPS, SEVERITIES } from './alarm-rule';

/** The package exports no SchemaObject type; this is the one its decorators take. */
type SchemaObject = Exclude<NonNullable<Extract<Parameters<typeof ApiBody>[0], { schema?: unknown }>['schema']>, { $ref: string }>;

const ruleSpecProperties: Record<string, SchemaObject> = {
  name: { type: 'string', maxLength: 200, example: 'Boiler too hot' },
  metric: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', example: 'temperature' },
  devices: {
    oneOf: [
      { type: 'string', enum: ['*'] },
      { type: 'array', items: { type: 'string' }, minItems: 1 },
    ],
    description: '"*" for every device, or a list of device ids',
    example: ['boiler-1'],
  },
  condition: {
    type: 'object',
    required: ['op', 'value'],
    properties: {
      op: { type: 'string', enum: [...COMPARISON_OPS, ...BAND_OPS] },
      value: {
        oneOf: [{ type: 'number' }, { type: 'array', items: { type: 'number' }, minItems: 2, maxItems: 2 }],
        description: 'a number for > >= < <=, [low, high] for outside/inside',
      },
    },
    example: { op: '>', value: 90 },
  },
  forS: { type: 'number', minimum: 0, default: 0, description: 'seconds of sample time the condition must hold before the alarm is raised' },
  clear: {
    type: 'object',
    properties: {
      hysteresis: { type: 'number', minimum: 0, default: 0, description: 'how far past the threshold, on the normal side, the value must go to clear' },
      forS: { type: 'number', minimum: 0, default: 0, description: 'seconds of sample time the value must stay there' },
    },
  },
  severity: { type: 'string', enum: [...SEVERITIES] },
  webhookUrl: { type: 'string', format: 'uri', description: 'receives alarm.raised / alarm.cleared POSTs' },
};

export const RULE_SPEC_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['name', 'metric', 'devices', 'condition', 'severity'],
  properties: ruleSpecProperties,
};

export const RULE_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['id', 'name', 'metric', 'devices', 'condition', 'forS', 'clear', 'severity', 'createdAt', 'updatedAt'],
  properties: {
    id: { type: 'integer' },
    ...ruleSpecProperties,
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
};

export const RULE_LIST_SCHEMA: SchemaObject = { type: 'object', required: ['items'], properties: { items: { type: 'array', items: RULE_SCHEMA } } };

export const ALARM_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['id', 'ruleId', 'deviceId', 'metric', 'severity', 'status', 'raisedAt', 'value', 'acknowledgedAt', 'clearedAt'],
  properties: {
    id: { type: 'integer' },
    ruleId: { type: 'integer' },
    deviceId: { type: 'string' },
    metric: { type: 'string' },
    severity: { type: 'string', enum: [...SEVERITIES] },
    status: { type: 'string', enum: ['active', 'acknowledged', 'cleared'] },
    raisedAt: { type: 'string', format: 'date-time', description: 'sample time of the value that raised it' },
    value: { type: 'number', description: 'the value that raised it' },
    acknowledgedAt: { type: 'string', format: 'date-time', nullable: true },
    clearedAt: {
      type: 'string',
      format: 'date-time',
      nullable: true,
      description: 'sample time of the value that cleared it (or when its rule was changed or deleted)',
    },
  },
};

export const ALARM_LIST_SCHEMA: SchemaObject = { type: 'object', required: ['items'], properties: { items: { type: 'array', items: ALARM_SCHEMA } } };

export const ERROR_SCHEMA: SchemaObject = {
  type: 'object',
  required: ['statusCode', 'message'],
  properties: { statusCode: { type: 'integer' }, message: { type: 'string' } },
};
