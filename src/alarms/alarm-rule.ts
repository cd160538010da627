// An alarm rule: its validated shape (the body of POST/PUT /api/alarm-rules)
// and the two predicates the evaluator needs, the raise condition and the
// condition widened by the clear hysteresis. Pure; no I/O.
import { BadRequestException } from '@nestjs/common';
import { z } from 'zod';
import { DEVICE_ID_PATTERN, DEVICE_ID_RULE, METRIC_NAME_PATTERN, METRIC_NAME_RULE } from '../telemetry/telemetry-rules';

export const COMPARISON_OPS = ['>', '>=', '<', '<='] as const;
export const BAND_OPS = ['outside', 'inside'] as const;
export const SEVERITIES = ['critical', 'major', 'minor', 'warning'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Longest forS / clear.forS accepted: 30 days of sample time. */
const MAX_DURATION_S = 30 * 24 * 3600;
const MAX_DEVICES = 10_000;

export type Condition = { op: (typeof COMPARISON_OPS)[number]; value: number } | { op: (typeof BAND_OPS)[number]; value: [number, number] };

export interface AlarmRuleSpec {
  name: string;
  metric: string;
  devices: string[] | '*';
  condition: Condition;
  forS: number;
  clear: { hysteresis: number; forS: number };
  severity: Severity;
  webhookUrl?: string;
}

export interface AlarmRule extends AlarmRuleSpec {
  id: number;
  version: number;
}

const finite = (field: string) => z.number({ error: `${field} must be a finite number` }).finite(`${field} must be a finite number`);
const duration = (field: string) =>
  z
    .number({ error: `${field} must be a number of seconds from 0 to ${MAX_DURATION_S}` })
    .min(0, `${field} must be a number of seconds from 0 to ${MAX_DURATION_S}`)
    .max(MAX_DURATION_S, `${field} must be a number of seconds from 0 to ${MAX_DURATION_S}`)
    .default(0);

const webhookUrl = z.string({ error: 'webhookUrl must be an http:// or https:// URL' }).refine((value) => {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && value.length <= 2000;
  } catch {
    return false;
  }
}, 'webhookUrl must be an http:// or https:// URL');

const ruleSchema = z
  .object(
    {
      name: z
        .string({ error: 'name must be a string of 1 to 200 characters' })
        .trim()
        .min(1, 'name must be a string of 1 to 200 characters')
        .max(200, 'name must be a string of 1 to 200 characters'),
      metric: z.string({ error: `metric is required and ${METRIC_NAME_RULE}` }).regex(METRIC_NAME_PATTERN, `metric ${METRIC_NAME_RULE}`),
      devices: z.custom<string[] | '*'>(
        (v) =>
          v === '*' || (Array.isArray(v) && v.length >= 1 && v.length <= MAX_DEVICES && v.every((d) => typeof d === 'string' && DEVICE_ID_PATTERN.test(d))),
        { message: `devices must be "*" or a list of 1 to ${MAX_DEVICES} device ids that each ${DEVICE_ID_RULE}` },
      ),
      condition: z.object(
        {
          op: z.enum([...COMPARISON_OPS, ...BAND_OPS], { error: 'condition.op must be one of >, >=, <, <=, outside, inside' }),
          value: z.union([finite('condition.value'), z.tuple([finite('condition.value[0]'), finite('condition.value[1]')])], {
            error: 'condition.value must be a number, or [low, high] for outside/inside',
          }),
        },
        { error: 'condition must be an object {op, value}' },
      ),
      forS: duration('forS'),
      clear: z
        .object(
          {
            hysteresis: z
              .number({ error: 'clear.hysteresis must be a number >= 0' })
              .finite('clear.hysteresis must be a number >= 0')
              .min(0, 'clear.hysteresis must be a number >= 0')
              .default(0),
            forS: duration('clear.forS'),
          },
          { error: 'clear must be an object {hysteresis, forS}' },
        )
        .default({ hysteresis: 0, forS: 0 }),
      severity: z.enum(SEVERITIES, { error: `severity must be one of ${SEVERITIES.join(', ')}` }),
      webhookUrl: webhookUrl.optional(),
    },
    { error: 'the body must be a JSON object' },
  )
  .strict()
  .superRefine((rule, ctx) => {
    const { op, value } = rule.condition;
    const band = op === 'outside' || op === 'inside';
    if (band && !Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', path: ['condition', 'value'], message: `condition.value must be [low, high] for ${op}` });
      return;
    }
    if (!band && Array.isArray(value)) {
      ctx.addIssue({ code: 'custom', path: ['condition', 'value'], message: `condition.value must be a number for ${op}` });
      return;
    }
    if (Array.isArray(value)) {
      if (!(value[0] < value[1]))
        ctx.addIssue({ code: 'custom', path: ['condition', 'value'], message: 'condition.value must be [low, high] with low < high' });
      // outside: the alarm clears inside [low + h, high - h]; that band must not be empty.
      else if (op === 'outside' && 2 * rule.clear.hysteresis >= value[1] - value[0])
        ctx.addIssue({
          code: 'custom',
          path: ['clear', 'hysteresis'],
          message: 'clear.hysteresis must be less than half of high - low for outside (else the alarm could never clear)',
        });
    }
  });

/** Validates a rule body; a failure is a 400 naming the field. */
export function parseRuleSpec(body: unknown): AlarmRuleSpec {
  const result = ruleSchema.safeParse(body);
  if (!result.success) {
    throw new BadRequestException(
      result.error.issues
        .map((issue) => {
          const field = issue.path.map(String).join('.');
          if (issue.code === 'unrecognized_keys') return `unknown field ${issue.keys.join(', ')}`;
          // Messages name their field; zod's generic ones get the path in front.
          return field && !issue.message.startsWith(field.split('.')[0]) ? `${field}: ${issue.message}` : issue.message || field;
        })
        .join('; '),
    );
  }
  const spec = result.data as AlarmRuleSpec;
  if (Array.isArray(spec.devices)) spec.devices = [...new Set(spec.devices)];
  return spec;
}

/** The raise condition. */
export function conditionHolds(condition: Condition, value: number): boolean {
  switch (condition.op) {
    case '>':
      return value > condition.value;
    case '>=':
      return value >= condition.value;
    case '<':
      return value < condition.value;
    case '<=':
      return value <= condition.value;
    case 'outside':
      return value < condition.value[0] || value > condition.value[1];
    case 'inside':
      return value >= condition.value[0] && value <= condition.value[1];
  }
}

/**
 * The condition widened by `hysteresis` towards the normal side: an open
 * alarm clears only once this is false (for `>` x: once value <= x - h;
 * outside [l, h]: once the value is within [l + h, high - h]; inside [l, h]:
 * once it is below l - h or above high + h).
 */
export function widenedHolds(condition: Condition, hysteresis: number, value: number): boolean {
  switch (condition.op) {
    case '>':
      return value > condition.value - hysteresis;
    case '>=':
      return value >= condition.value - hysteresis;
    case '<':
      return value < condition.value + hysteresis;
    case '<=':
      return value <= condition.value + hysteresis;
    case 'outside':
      return value < condition.value[0] + hysteresis || value > condition.value[1] - hysteresis;
    case 'inside':
      return value >= condition.value[0] - hysteresis && value <= condition.value[1] + hysteresis;
  }
}
