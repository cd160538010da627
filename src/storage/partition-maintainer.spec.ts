// The partition layout rules (planPartitions) without a database: days kept
// ahead, holes filled, retention dropping whole days while the catch-all's
// bound follows so the covered range never breaks.
import { DAY_MS, type PartitionRange, type PartitionStep, dailyPartitionName, planPartitions } from './partition-maintainer';

const D = Date.UTC(2026, 10, 22); // a UTC midnight
const NOON = D + 12 * 3600_000;

const catchAll = (to: number): PartitionRange => ({ name: 'samples_catchall', from: null, to });
const day = (from: number): PartitionRange => ({ name: dailyPartitionName(from), from, to: from + DAY_MS });
const days = (first: number, count: number) => Array.from({ length: count }, (_, i) => day(first + i * DAY_MS));

const created = (steps: PartitionStep[]) => steps.filter((s) => s.kind === 'create').map((s) => s.name);
const kinds = (steps: PartitionStep[]) => steps.map((s) => s.kind);

/** Applies a plan to a layout, as the database would, to check what the next run sees. */
function apply(partitions: PartitionRange[], steps: PartitionStep[]): PartitionRange[] {
  let out = [...partitions];
  for (const s of steps) {
    if (s.kind === 'create') out.push({ name: s.name, from: s.from, to: s.to });
    if (s.kind === 'drop') out = out.filter((p) => p.name !== s.name);
    if (s.kind === 'create-catchall') out.push(catchAll(s.to));
    if (s.kind === 'extend-catchall') out = out.map((p) => (p.name === s.name ? { ...p, to: s.to } : p));
  }
  return out;
}

/** True when the partitions cover one unbroken range starting at MINVALUE. */
function contiguous(partitions: PartitionRange[]): boolean {
  const sorted = [...partitions].sort((a, b) => (a.from ?? -Infinity) - (b.from ?? -Infinity));
  if (sorted[0]?.from !== null) return false;
  return sorted.every((p, i) => i === 0 || p.from === sorted[i - 1].to);
}

describe('planPartitions', () => {
  it('creates today and the 7 days after it behind a fresh catch-all', () => {
    const steps = planPartitions({ partitions: [catchAll(D)], now: NOON, retentionDays: undefined });
    expect(created(steps)).toEqual(days(D, 8).map((p) => p.name));
    expect(steps[0]).toEqual({ kind: 'create', name: 'samples_p20261122', from: D, to: D + DAY_MS });
  });

  it('does nothing when the week ahead already exists', () => {
    expect(planPartitions({ partitions: [catchAll(D), ...days(D, 8)], now: NOON, retentionDays: undefined })).toEqual([]);
  });

  it('adds one day as the clock moves into the next day', () => {
    const steps = planPartitions({ partitions: [catchAll(D), ...days(D, 8)], now: NOON + DAY_MS, retentionDays: undefined });
    expect(created(steps)).toEqual([dailyPartitionName(D + 8 * DAY_MS)]);
  });

  it('fills every missing day between the catch-all bound and the horizon, leaving no hole', () => {
    // The service was down: the catch-all ends 3 days ago and one day in the middle is missing too.
    const partitions = [catchAll(D - 3 * DAY_MS), day(D - 3 * DAY_MS), day(D + DAY_MS)];
    const steps = planPartitions({ partitions, now: NOON, retentionDays: undefined });
    expect(created(steps)).toEqual([-2, -1, 0, 2, 3, 4, 5, 6, 7].map((n) => dailyPartitionName(D + n * DAY_MS)));
    expect(contiguous(apply(partitions, steps))).toBe(true);
  });

  it('creates the days a write asks for beyond the horizon, but never more than 35 days ahead', () => {
    const near = planPartitions({ partitions: [catchAll(D), ...days(D, 8)], now: NOON, retentionDays: undefined, through: D + 10 * DAY_MS + 5 });
    expect(created(near)).toEqual([8, 9, 10].map((n) => dailyPartitionName(D + n * DAY_MS)));
    const far = planPartitions({ partitions: [catchAll(D)], now: NOON, retentionDays: undefined, through: D + 400 * DAY_MS });
    expect(created(far)).toHaveLength(36);
    expect(created(far).at(-1)).toBe(dailyPartitionName(D + 35 * DAY_MS));
  });

  it('re-creates a missing catch-all below the first day', () => {
    const steps = planPartitions({ partitions: days(D, 8), now: NOON, retentionDays: undefined });
    expect(steps).toEqual([{ kind: 'create-catchall', name: 'samples_catchall', to: D }]);
  });

  describe('retention', () => {
    const layout = [catchAll(D - 10 * DAY_MS), ...days(D - 10 * DAY_MS, 18)]; // D-10 … D+7

    it('drops whole days whose end is at or before now - RETENTION_DAYS and moves the catch-all bound over them', () => {
      const steps = planPartitions({ partitions: layout, now: NOON, retentionDays: 3 });
      // cutoff = D-3 days + 12 h: days D-10 … D-4 end by D-3 ≤ cutoff; day D-3 holds rows newer than the cutoff.
      const dropped = steps.filter((s) => s.kind === 'drop').map((s) => s.name);
      expect(dropped).toEqual(days(D - 10 * DAY_MS, 7).map((p) => p.name));
      expect(steps.slice(7)).toEqual([
        { kind: 'empty-catchall', name: 'samples_catchall' },
        { kind: 'extend-catchall', name: 'samples_catchall', from: D - 10 * DAY_MS, to: D - 3 * DAY_MS },
      ]);
      const after = apply(layout, steps);
      expect(contiguous(after)).toBe(true);
      expect(after.some((p) => p.name === dailyPartitionName(D - 3 * DAY_MS))).toBe(true);
      // The next run in the same hour finds nothing to drop, only the catch-all to trim.
      expect(kinds(planPartitions({ partitions: after, now: NOON, retentionDays: 3 }))).toEqual(['trim-catchall']);
    });

    it('only trims the catch-all while no whole day has expired', () => {
      const steps = planPartitions({ partitions: [catchAll(D), ...days(D, 8)], now: NOON, retentionDays: 30 });
      expect(steps).toEqual([{ kind: 'trim-catchall', name: 'samples_catchall', before: NOON - 30 * DAY_MS }]);
    });

    it('keeps the catch-all (trimming it) while it still holds rows newer than the cutoff', () => {
      // Just after an upgrade: the old table ends tomorrow, and the cutoff is in the past.
      const steps = planPartitions({ partitions: [catchAll(D + DAY_MS), ...days(D + DAY_MS, 7)], now: NOON, retentionDays: 1 });
      expect(steps).toEqual([{ kind: 'trim-catchall', name: 'samples_catchall', before: NOON - DAY_MS }]);
    });

    it('after a long outage empties the catch-all and resumes daily partitions at the cutoff day', () => {
      const partitions = [catchAll(D - 100 * DAY_MS), ...days(D - 100 * DAY_MS, 2)];
      const steps = planPartitions({ partitions, now: NOON, retentionDays: 5 });
      expect(kinds(steps).slice(0, 4)).toEqual(['drop', 'drop', 'empty-catchall', 'extend-catchall']);
      expect(steps[3]).toMatchObject({ to: D - 5 * DAY_MS });
      expect(created(steps)).toEqual(days(D - 5 * DAY_MS, 13).map((p) => p.name));
      expect(contiguous(apply(partitions, steps))).toBe(true);
    });
  });
});
