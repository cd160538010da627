// The alarm state machine of one rule × device in sample time: forS before a
// raise, hysteresis and clear.forS before a clear, and that points at or
// before the last evaluated one change nothing.
import { evaluatePoints, INITIAL_STATE, type PairState, type RuleTiming } from './alarm-evaluator';
import type { Condition } from './alarm-rule';

const S = 1000;
const rule = (condition: Condition, forS = 0, clear = { hysteresis: 0, forS: 0 }): RuleTiming => ({ condition, forS, clear });
const pts = (...pairs: Array<[number, number]>) => pairs.map(([t, value]) => ({ ts: t * S, value }));

/** Feeds points one call at a time (as separate batches would) and collects every transition. */
function run(r: RuleTiming, batches: Array<Array<{ ts: number; value: number }>>, start: PairState = INITIAL_STATE) {
  let state = start;
  const transitions: string[] = [];
  for (const batch of batches) {
    const out = evaluatePoints(r, state, batch);
    state = out.state;
    for (const t of out.transitions) transitions.push(`${t.kind}@${t.ts / S}=${t.value}`);
  }
  return { state, transitions };
}

describe('evaluatePoints', () => {
  it('raises at the first matching point when forS is 0, and clears at the first non-matching one', () => {
    const { transitions, state } = run(rule({ op: '>', value: 10 }), [pts([1, 5], [2, 11], [3, 12], [4, 10], [5, 11])]);
    expect(transitions).toEqual(['raise@2=11', 'clear@4=10', 'raise@5=11']);
    expect(state.open).toBe(true);
  });

  it('raises only once the condition has held for forS seconds of sample time, across batches', () => {
    const r = rule({ op: '>=', value: 10 }, 30);
    expect(run(r, [pts([0, 10], [10, 15]), pts([20, 12]), pts([29, 11])]).transitions).toEqual([]);
    expect(run(r, [pts([0, 10], [10, 15]), pts([20, 12]), pts([30, 11])]).transitions).toEqual(['raise@30=11']);
  });

  it('a non-matching point restarts the forS run', () => {
    const r = rule({ op: '<', value: 0 }, 10);
    expect(run(r, [pts([0, -1], [5, 1], [10, -1], [15, -2], [19, -3])]).transitions).toEqual([]);
    expect(run(r, [pts([0, -1], [5, 1], [10, -1], [15, -2], [20, -3])]).transitions).toEqual(['raise@20=-3']);
  });

  it('clears only below threshold minus hysteresis for > ', () => {
    const r = rule({ op: '>', value: 10 }, 0, { hysteresis: 2, forS: 0 });
    expect(run(r, [pts([1, 11], [2, 9], [3, 8.5], [4, 8.01])]).transitions).toEqual(['raise@1=11']);
    expect(run(r, [pts([1, 11], [2, 9], [3, 8])]).transitions).toEqual(['raise@1=11', 'clear@3=8']);
  });

  it('widens <= and < upwards, and >= downwards', () => {
    expect(run(rule({ op: '<=', value: 0 }, 0, { hysteresis: 1, forS: 0 }), [pts([1, 0], [2, 1], [3, 1.5])]).transitions).toEqual(['raise@1=0', 'clear@3=1.5']);
    expect(run(rule({ op: '<', value: 0 }, 0, { hysteresis: 1, forS: 0 }), [pts([1, -1], [2, 0.5], [3, 1])]).transitions).toEqual(['raise@1=-1', 'clear@3=1']);
    expect(run(rule({ op: '>=', value: 10 }, 0, { hysteresis: 1, forS: 0 }), [pts([1, 10], [2, 9], [3, 8.9])]).transitions).toEqual([
      'raise@1=10',
      'clear@3=8.9',
    ]);
  });

  it('outside [low, high] clears only within [low + h, high - h]', () => {
    const r = rule({ op: 'outside', value: [10, 20] }, 0, { hysteresis: 2, forS: 0 });
    expect(run(r, [pts([1, 25], [2, 19], [3, 11], [4, 12])]).transitions).toEqual(['raise@1=25', 'clear@4=12']);
    expect(run(r, [pts([1, 5], [2, 18])]).transitions).toEqual(['raise@1=5', 'clear@2=18']);
    expect(run(r, [pts([1, 10], [2, 20])]).transitions).toEqual([]);
  });

  it('inside [low, high] clears only outside [low - h, high + h]', () => {
    const r = rule({ op: 'inside', value: [10, 20] }, 0, { hysteresis: 2, forS: 0 });
    expect(run(r, [pts([1, 15], [2, 21], [3, 9], [4, 22.5])]).transitions).toEqual(['raise@1=15', 'clear@4=22.5']);
    expect(run(r, [pts([1, 10], [2, 7.9])]).transitions).toEqual(['raise@1=10', 'clear@2=7.9']);
  });

  it('clears only after the widened condition has been false for clear.forS, restarting on a relapse', () => {
    const r = rule({ op: '>', value: 10 }, 0, { hysteresis: 0, forS: 60 });
    expect(run(r, [pts([0, 11], [10, 5], [40, 5], [50, 12], [60, 5], [119, 5])]).transitions).toEqual(['raise@0=11']);
    expect(run(r, [pts([0, 11], [10, 5], [40, 5], [50, 12], [60, 5]), pts([120, 5])]).transitions).toEqual(['raise@0=11', 'clear@120=5']);
  });

  it('ignores duplicates and points at or before the last evaluated one (late samples)', () => {
    const r = rule({ op: '>', value: 10 }, 20);
    const first = run(r, [pts([0, 11], [10, 11])]);
    // Redelivered, duplicated and late points: nothing changes, not even the run start.
    const again = run(r, [pts([0, 11], [10, 11], [5, 1])], first.state);
    expect(again.state).toEqual(first.state);
    expect(again.transitions).toEqual([]);
    expect(run(r, [pts([20, 11])], again.state).transitions).toEqual(['raise@20=11']);
  });

  it('does not raise twice while open, and an open alarm ignores further matching points', () => {
    const { transitions } = run(rule({ op: '>', value: 0 }), [pts([1, 1], [2, 2]), pts([3, 3])]);
    expect(transitions).toEqual(['raise@1=1']);
  });

  it('does not mutate the state it was given', () => {
    const start: PairState = { lastTs: null, holdSince: null, clearSince: null, open: false };
    const frozen = Object.freeze({ ...start });
    evaluatePoints(rule({ op: '>', value: 0 }), frozen, pts([1, 1]));
    expect(frozen).toEqual(start);
  });
});
