// The in-memory rule index and the grouping of a batch per rule × device:
// what the evaluator does before it touches the database.
import { groupByPair } from './alarm-evaluation.service';
import type { AlarmRule } from './alarm-rule';
import { buildIndex } from './alarm-rules.service';

const rule = (id: number, metric: string, devices: string[] | '*'): AlarmRule => ({
  id,
  version: 1,
  name: `r${id}`,
  metric,
  devices,
  condition: { op: '>', value: 0 },
  forS: 0,
  clear: { hysteresis: 0, forS: 0 },
  severity: 'minor',
});

function rulesFor(rules: AlarmRule[]) {
  const index = buildIndex(rules);
  return (metric: string, deviceId: string) => {
    const entry = index.get(metric);
    if (!entry) return [];
    return [...entry.everyDevice, ...(entry.byDevice.get(deviceId) ?? [])];
  };
}

describe('buildIndex', () => {
  it('indexes rules by metric, then by listed device, with "*" rules apart', () => {
    const index = buildIndex([rule(1, 'temp', ['a', 'b']), rule(2, 'temp', '*'), rule(3, 'hum', ['a'])]);
    expect([...index.keys()].sort()).toEqual(['hum', 'temp']);
    expect(index.get('temp')?.everyDevice.map((r) => r.id)).toEqual([2]);
    expect(
      index
        .get('temp')
        ?.byDevice.get('a')
        ?.map((r) => r.id),
    ).toEqual([1]);
    expect(index.get('temp')?.byDevice.has('c')).toBe(false);
    expect(
      index
        .get('hum')
        ?.byDevice.get('a')
        ?.map((r) => r.id),
    ).toEqual([3]);
  });
});

describe('groupByPair', () => {
  it('groups samples per rule × device, points in time order, pairs in (rule, device) order; unwatched samples fall out', () => {
    const lookup = rulesFor([rule(2, 'temp', '*'), rule(1, 'temp', ['b'])]);
    const pairs = groupByPair(
      [
        { deviceId: 'b', metric: 'temp', ts: 30, value: 3 },
        { deviceId: 'a', metric: 'temp', ts: 20, value: 2 },
        { deviceId: 'b', metric: 'temp', ts: 10, value: 1 },
        { deviceId: 'b', metric: 'other', ts: 5, value: 9 },
      ],
      lookup,
    );
    expect(pairs.map((p) => [p.rule.id, p.deviceId, p.points.map((x) => x.ts)])).toEqual([
      [1, 'b', [10, 30]],
      [2, 'a', [20]],
      [2, 'b', [10, 30]],
    ]);
  });
});
