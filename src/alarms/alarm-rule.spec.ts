// Rule bodies: defaults, normalisation, and a 400 naming the field for each
// kind of mistake.
import { BadRequestException } from '@nestjs/common';
import { parseRuleSpec } from './alarm-rule';
import { backoffMs, signature } from './webhook-sender';
import { createHmac } from 'node:crypto';

const valid = { name: 'hot', metric: 'temperature', devices: '*', condition: { op: '>', value: 30 }, severity: 'major' };

function rejection(body: unknown): string {
  try {
    parseRuleSpec(body);
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestException);
    const message = ((error as BadRequestException).getResponse() as { message: unknown }).message;
    expect(typeof message).toBe('string');
    return message as string;
  }
  throw new Error(`accepted ${JSON.stringify(body)}`);
}

describe('parseRuleSpec', () => {
  it('fills the defaults (forS 0, clear {hysteresis 0, forS 0}) and de-duplicates devices', () => {
    expect(parseRuleSpec(valid)).toEqual({ ...valid, forS: 0, clear: { hysteresis: 0, forS: 0 } });
    const spec = parseRuleSpec({
      ...valid,
      devices: ['a', 'b', 'a'],
      condition: { op: 'outside', value: [1, 5] },
      clear: { hysteresis: 1 },
      webhookUrl: 'https://example.com/hook',
    });
    expect(spec.devices).toEqual(['a', 'b']);
    expect(spec.clear).toEqual({ hysteresis: 1, forS: 0 });
    expect(spec.webhookUrl).toBe('https://example.com/hook');
  });

  it.each([
    [{ ...valid, name: '' }, /name/],
    [{ ...valid, name: undefined }, /name/],
    [{ ...valid, metric: 'bad metric' }, /metric/],
    [{ ...valid, devices: [] }, /devices/],
    [{ ...valid, devices: 'dev-1' }, /devices/],
    [{ ...valid, devices: ['ok', 'not ok'] }, /devices/],
    [{ ...valid, condition: { op: '!=', value: 1 } }, /condition\.op/],
    [{ ...valid, condition: { op: '>', value: [1, 2] } }, /condition\.value/],
    [{ ...valid, condition: { op: 'inside', value: 3 } }, /condition\.value/],
    [{ ...valid, condition: { op: 'inside', value: [5, 1] } }, /condition\.value/],
    [{ ...valid, condition: { op: '>', value: '30' } }, /condition\.value/],
    [{ ...valid, condition: undefined }, /condition/],
    [{ ...valid, forS: -1 }, /forS/],
    [{ ...valid, forS: '10' }, /forS/],
    [{ ...valid, clear: { hysteresis: -1 } }, /clear\.hysteresis/],
    [{ ...valid, clear: { forS: -5 } }, /clear\.forS/],
    [{ ...valid, condition: { op: 'outside', value: [0, 10] }, clear: { hysteresis: 5 } }, /clear\.hysteresis/],
    [{ ...valid, severity: 'fatal' }, /severity/],
    [{ ...valid, webhookUrl: 'ftp://x' }, /webhookUrl/],
    [{ ...valid, webhookUrl: 'not a url' }, /webhookUrl/],
    [{ ...valid, extra: 1 }, /extra/],
    ['a string', /object/],
  ])('rejects %j naming the field', (body, field) => {
    expect(rejection(body)).toMatch(field);
  });
});

describe('webhook helpers', () => {
  it('signs the exact body with HMAC-SHA256 as sha256=<hex>', () => {
    const body = '{"type":"alarm.raised"}';
    expect(signature('k', body)).toBe(`sha256=${createHmac('sha256', 'k').update(body).digest('hex')}`);
  });

  it('backs off exponentially from 1 s, with jitter between half and the full delay, capped at 10 min', () => {
    expect(backoffMs(1, () => 1)).toBe(1000);
    expect(backoffMs(1, () => 0)).toBe(500);
    expect(backoffMs(4, () => 1)).toBe(8000);
    expect(backoffMs(100, () => 1)).toBe(600_000);
    expect(backoffMs(100, () => 0)).toBe(300_000);
  });
});
