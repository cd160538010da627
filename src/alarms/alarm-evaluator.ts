// The alarm state machine of one rule × device, in sample time. Pure: the
// caller loads the state, feeds the new points in time order and stores what
// comes back, so restarts and other instances continue where it stopped.
import { type AlarmRule, conditionHolds, widenedHolds } from './alarm-rule';

export interface PairState {
  /** Newest sample time evaluated (epoch ms); points at or before it are ignored. */
  lastTs: number | null;
  /** While no alarm is open: first time of the current run of matching samples. */
  holdSince: number | null;
  /** While an alarm is open: first time of the current run of samples outside the widened condition. */
  clearSince: number | null;
  open: boolean;
}

export interface Transition {
  kind: 'raise' | 'clear';
  /** Sample time of the point that completed the transition. */
  ts: number;
  value: number;
}

export const INITIAL_STATE: Readonly<PairState> = Object.freeze({ lastTs: null, holdSince: null, clearSince: null, open: false });

export type RuleTiming = Pick<AlarmRule, 'condition' | 'forS' | 'clear'>;

/**
 * Feeds `points` (ascending ts) through the state machine. An alarm is raised
 * at the first point where the condition has held continuously for forS
 * seconds (forS 0: the first matching point); it clears at the first point
 * where the widened condition has been false for clear.forS seconds. A point
 * that breaks a run resets it. Points at or before lastTs change nothing:
 * that is what makes duplicates and redeliveries harmless.
 */
export function evaluatePoints(
  rule: RuleTiming,
  start: Readonly<PairState>,
  points: ReadonlyArray<{ ts: number; value: number }>,
): { state: PairState; transitions: Transition[] } {
  const state: PairState = { ...start };
  const transitions: Transition[] = [];
  const holdMs = rule.forS * 1000;
  const clearMs = rule.clear.forS * 1000;
  for (const { ts, value } of points) {
    if (state.lastTs !== null && ts <= state.lastTs) continue;
    state.lastTs = ts;
    if (!state.open) {
      if (!conditionHolds(rule.condition, value)) {
        state.holdSince = null;
        continue;
      }
      state.holdSince ??= ts;
      if (ts - state.holdSince >= holdMs) {
        transitions.push({ kind: 'raise', ts, value });
        state.open = true;
        state.holdSince = null;
        state.clearSince = null;
      }
    } else {
      if (widenedHolds(rule.condition, rule.clear.hysteresis, value)) {
        state.clearSince = null;
        continue;
      }
      state.clearSince ??= ts;
      if (ts - state.clearSince >= clearMs) {
        transitions.push({ kind: 'clear', ts, value });
        state.open = false;
        state.clearSince = null;
        state.holdSince = null;
      }
    }
  }
  return { state, transitions };
}

export function sameState(a: Readonly<PairState>, b: Readonly<PairState>): boolean {
  return a.lastTs === b.lastTs && a.holdSince === b.holdSince && a.clearSince === b.clearSince && a.open === b.open;
}
