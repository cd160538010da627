// Runs committed samples through the alarm rules. A batch whose metrics no
// rule watches costs one map lookup per sample and nothing else. Otherwise the
// batch's points are grouped per rule × device and evaluated in ONE
// transaction: lock and read the pairs' state (one statement), run the state
// machine in memory, write the changed states back (one statement), plus the
// alarm and outbox rows when something was raised or cleared. Batches that
// commit while an evaluation runs are merged into the next one, so under load
// there are fewer, larger evaluations rather than a queue of small ones.
//
// Several instances: each evaluates the samples it committed. The state rows
// are locked in (rule, device) order, so two instances serialize on a shared
// pair, and the second ignores points at or before the first one's newest
// (a late sample never reopens the past; see docs/api.md).
import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { Sample } from '../telemetry/sample';
import { TelemetryEvents, type Unsubscribe } from '../telemetry/telemetry-events';
import { AlarmAnnouncer, type AlarmChange } from './alarm-announcer';
import { evaluatePoints, sameState, type Transition } from './alarm-evaluator';
import type { AlarmRule } from './alarm-rule';
import { AlarmRules } from './alarm-rules.service';
import { AlarmStore, type StoredState, type Tx } from './alarm-store';

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5000;
/** How long shutdown waits for the evaluation of the last committed batches. */
const DRAIN_TIMEOUT_MS = 10_000;

interface Pair {
  rule: AlarmRule;
  deviceId: string;
  points: Array<{ ts: number; value: number }>;
}

/** Groups samples per rule × device (points ascending), in (rule, device) order. */
export function groupByPair(samples: readonly Sample[], rulesFor: (metric: string, deviceId: string) => readonly AlarmRule[]): Pair[] {
  const pairs = new Map<string, Pair>();
  for (const s of samples) {
    const rules = rulesFor(s.metric, s.deviceId);
    for (const rule of rules) {
      const key = `${rule.id}\u0000${s.deviceId}`;
      let pair = pairs.get(key);
      if (!pair) pairs.set(key, (pair = { rule, deviceId: s.deviceId, points: [] }));
      pair.points.push({ ts: s.ts, value: s.value });
    }
  }
  const list = [...pairs.values()];
  for (const pair of list) if (pair.points.length > 1) pair.points.sort((a, b) => a.ts - b.ts);
  return list.sort((a, b) => a.rule.id - b.rule.id || (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
}

@Injectable()
export class AlarmEvaluationService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('AlarmEvaluation');
  private offCommitted: Unsubscribe | undefined;
  private pending: Sample[][] = [];
  private running: Promise<void> | undefined;
  private stopping = false;
  private failing = false;

  constructor(
    private readonly events: TelemetryEvents,
    private readonly rules: AlarmRules,
    private readonly store: AlarmStore,
    private readonly announcer: AlarmAnnouncer,
  ) {}

  onModuleInit(): void {
    this.offCommitted = this.events.on('batch.committed', (batch) => this.offer(batch.samples));
  }

  /** Waits (bounded) for what was committed before shutdown to be evaluated. */
  async onApplicationShutdown(): Promise<void> {
    this.offCommitted?.();
    const running = this.running;
    if (running) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([running, new Promise((resolve) => (timer = setTimeout(resolve, DRAIN_TIMEOUT_MS)))]);
      clearTimeout(timer);
    }
    this.stopping = true;
  }

  offer(samples: readonly Sample[]): void {
    if (this.rules.empty) return;
    let watched: Sample[] | undefined;
    for (const s of samples) if (this.rules.watches(s.metric)) (watched ??= []).push(s);
    if (!watched) return;
    this.pending.push(watched);
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves once everything offered so far is evaluated (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    let delay = RETRY_MIN_MS;
    while (this.pending.length > 0 && !this.stopping) {
      const samples = this.pending.length === 1 ? this.pending[0] : this.pending.flat();
      this.pending = [];
      try {
        await this.evaluate(samples);
        delay = RETRY_MIN_MS;
        if (this.failing) this.logger.log('alarm evaluation recovered');
        this.failing = false;
      } catch (error) {
        // Put them back in front: nothing committed is skipped while PostgreSQL is away.
        this.pending.unshift(samples);
        if (!this.failing) this.logger.error({ msg: 'alarm evaluation failed; retrying', error: String(error) });
        this.failing = true;
        await new Promise((resolve) => setTimeout(resolve, delay));
        delay = Math.min(delay * 2, RETRY_MAX_MS);
      }
    }
  }

  private async evaluate(samples: readonly Sample[]): Promise<void> {
    const pairs = groupByPair(samples, (metric, deviceId) => this.rules.rulesFor(metric, deviceId));
    if (pairs.length === 0) return;
    let stale = false;
    const changes = await this.store.transaction(async (tx) => {
      const states = await this.lockStates(tx, pairs);
      const written: StoredState[] = [];
      const sequences: Array<{ pair: Pair; transitions: Transition[] }> = [];
      for (const pair of pairs) {
        const stored = states.get(key(pair.rule.id, pair.deviceId));
        // Another instance changed the rule after this one loaded it: skip until reloaded.
        if (!stored || stored.ruleVersion !== pair.rule.version) {
          stale = true;
          continue;
        }
        const { state, transitions } = evaluatePoints(pair.rule, stored, pair.points);
        if (!sameState(state, stored)) written.push({ ...stored, ...state });
        if (transitions.length > 0) sequences.push({ pair, transitions });
      }
      await this.store.writeStates(tx, written);
      if (sequences.length === 0) return [];
      return this.applyTransitions(tx, sequences);
    });
    if (changes.length > 0) this.announcer.announce(changes);
    if (stale) await this.rules.reload().catch(() => undefined);
  }

  /**
   * The pairs' state rows, locked. Pairs evaluated for the first time get a
   * row first, under a share lock on their rule so a concurrent change or
   * deletion of the rule either waits or is seen.
   */
  private async lockStates(tx: Tx, pairs: readonly Pair[]): Promise<Map<string, StoredState>> {
    const found = await this.store.lockStates(
      tx,
      pairs.map((p) => p.rule.id),
      pairs.map((p) => p.deviceId),
    );
    const states = new Map(found.map((s) => [key(s.ruleId, s.deviceId), s]));
    const missing = pairs.filter((p) => !states.has(key(p.rule.id, p.deviceId)));
    if (missing.length === 0) return states;
    const versions = await this.store.lockRuleVersions(tx, [...new Set(missing.map((p) => p.rule.id))]);
    const current = missing.filter((p) => versions.get(p.rule.id) === p.rule.version);
    if (current.length === 0) return states;
    await this.store.createStates(
      tx,
      current.map((p) => p.rule.id),
      current.map((p) => p.deviceId),
    );
    for (const s of await this.store.lockStates(
      tx,
      current.map((p) => p.rule.id),
      current.map((p) => p.deviceId),
    )) {
      states.set(key(s.ruleId, s.deviceId), s);
    }
    return states;
  }

  /**
   * Raises and clears in per-pair order: round k applies every pair's k-th
   * transition (almost always there is one round), so a pair that raised and
   * cleared within one batch clears the alarm it just raised.
   */
  private async applyTransitions(tx: Tx, sequences: ReadonlyArray<{ pair: Pair; transitions: Transition[] }>): Promise<AlarmChange[]> {
    const changes: AlarmChange[] = [];
    // The webhook of the rule version this evaluation used (the one share-locked or state-locked).
    const ruleById = new Map(sequences.map((s) => [s.pair.rule.id, s.pair.rule]));
    const webhookOf = (ruleId: number) => ruleById.get(ruleId)?.webhookUrl;
    const rounds = Math.max(...sequences.map((s) => s.transitions.length));
    for (let round = 0; round < rounds; round++) {
      const raises: Array<{ rule: AlarmRule; deviceId: string; ts: number; value: number }> = [];
      const clears: Array<{ ruleId: number; deviceId: string; ts: number; value: number }> = [];
      for (const { pair, transitions } of sequences) {
        const t = transitions[round];
        if (!t) continue;
        if (t.kind === 'raise') raises.push({ rule: pair.rule, deviceId: pair.deviceId, ts: t.ts, value: t.value });
        else clears.push({ ruleId: pair.rule.id, deviceId: pair.deviceId, ts: t.ts, value: t.value });
      }
      for (const alarm of await this.store.clear(tx, clears)) changes.push({ type: 'alarm.cleared', alarm, webhookUrl: webhookOf(alarm.ruleId) });
      for (const alarm of await this.store.raise(tx, raises)) changes.push({ type: 'alarm.raised', alarm, webhookUrl: webhookOf(alarm.ruleId) });
    }
    await this.announcer.enqueueWebhooks(tx, this.store, changes);
    return changes;
  }
}

const key = (ruleId: number, deviceId: string) => `${ruleId}\u0000${deviceId}`;
