// Alarm rules: CRUD in PostgreSQL, and this instance's in-memory copy indexed
// by metric and device so the evaluator can skip a batch, or a sample, with a
// map lookup. Every change bumps one version row; each instance polls it
// every RULES_POLL_MS (one indexed single-row read) and reloads when it moved,
// so a change made on another instance is picked up within about a second.
// The instance that made the change reloads at once.
import { Injectable, Logger, NotFoundException, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import type { AlarmRule, AlarmRuleSpec } from './alarm-rule';
import { AlarmAnnouncer, type AlarmChange } from './alarm-announcer';
import { AlarmStore, type RuleView, type Tx } from './alarm-store';

export const RULES_POLL_MS = 1000;
/** PostgreSQL's deadlock_detected: a rule change racing an evaluation; retried. */
const DEADLOCK = '40P01';

interface MetricIndex {
  /** Rules with devices "*". */
  everyDevice: AlarmRule[];
  byDevice: Map<string, AlarmRule[]>;
}

const EMPTY: readonly AlarmRule[] = Object.freeze([]);

export function buildIndex(rules: readonly AlarmRule[]): Map<string, MetricIndex> {
  const index = new Map<string, MetricIndex>();
  for (const rule of rules) {
    let entry = index.get(rule.metric);
    if (!entry) index.set(rule.metric, (entry = { everyDevice: [], byDevice: new Map() }));
    if (rule.devices === '*') {
      entry.everyDevice.push(rule);
      continue;
    }
    for (const deviceId of rule.devices) {
      const list = entry.byDevice.get(deviceId);
      if (list) list.push(rule);
      else entry.byDevice.set(deviceId, [rule]);
    }
  }
  return index;
}

export const ruleNotFound = (id: number) => new NotFoundException(`alarm rule ${id} not found`);

@Injectable()
export class AlarmRules implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('AlarmRules');
  private index = new Map<string, MetricIndex>();
  private byId = new Map<number, AlarmRule>();
  private loadedVersion = -1;
  private timer: NodeJS.Timeout | undefined;
  private loading: Promise<void> | undefined;
  private pollFailed = false;

  constructor(
    private readonly store: AlarmStore,
    private readonly announcer: AlarmAnnouncer,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => {
      this.poll().catch((error: unknown) => {
        if (!this.pollFailed) this.logger.warn({ msg: 'alarm rule refresh failed; keeping the rules loaded', error: String(error) });
        this.pollFailed = true;
      });
    }, RULES_POLL_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  // ---- the in-memory copy --------------------------------------------------

  /** Whether any rule watches this metric (the evaluator's first, cheapest filter). */
  watches(metric: string): boolean {
    return this.index.has(metric);
  }

  get empty(): boolean {
    return this.index.size === 0;
  }

  rulesFor(metric: string, deviceId: string): readonly AlarmRule[] {
    const entry = this.index.get(metric);
    if (!entry) return EMPTY;
    const listed = entry.byDevice.get(deviceId);
    if (!listed) return entry.everyDevice;
    return entry.everyDevice.length === 0 ? listed : [...entry.everyDevice, ...listed];
  }

  /** The rule as this instance currently knows it. */
  known(id: number): AlarmRule | undefined {
    return this.byId.get(id);
  }

  private async poll(): Promise<void> {
    const version = await this.store.rulesVersion();
    this.pollFailed = false;
    if (version !== this.loadedVersion) await this.reload();
  }

  /** Reloads every rule; concurrent callers share one load. */
  reload(): Promise<void> {
    this.loading ??= this.store
      .loadRules()
      .then(({ version, rules }) => {
        this.index = buildIndex(rules);
        this.byId = new Map(rules.map((r) => [r.id, r]));
        this.loadedVersion = version;
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }

  // ---- CRUD --------------------------------------------------------------

  list(): Promise<RuleView[]> {
    return this.store.listRules();
  }

  async get(id: number): Promise<RuleView> {
    const rule = await this.store.findRule(id);
    if (!rule) throw ruleNotFound(id);
    return rule;
  }

  async create(spec: AlarmRuleSpec): Promise<RuleView> {
    const rule = await this.store.transaction((tx) => this.store.insertRule(tx, spec));
    await this.reloadQuietly();
    return rule;
  }

  /**
   * Replaces a rule. Its open alarms are cleared and its evaluation starts
   * afresh under the new definition (an alarm raised under the old condition
   * says nothing about the new one).
   */
  async update(id: number, spec: AlarmRuleSpec): Promise<RuleView> {
    const before = await this.get(id);
    return this.change(id, before.webhookUrl, (tx) => this.store.updateRule(tx, id, spec));
  }

  /** Deletes a rule; its open alarms are cleared (and announced) with it. */
  async remove(id: number): Promise<void> {
    const before = await this.get(id);
    await this.change(id, before.webhookUrl, (tx) => this.store.deleteRule(tx, id));
  }

  private async change(id: number, webhookUrl: string | undefined, apply: (tx: Tx) => Promise<RuleView | undefined>): Promise<RuleView> {
    for (let attempt = 1; ; attempt++) {
      try {
        const { rule, changes } = await this.store.transaction(async (tx) => {
          const changed = await apply(tx);
          if (!changed) throw ruleNotFound(id);
          const cleared = await this.store.clearRuleAlarms(tx, id);
          const changes: AlarmChange[] = cleared.map((alarm) => ({ type: 'alarm.cleared', alarm, webhookUrl }));
          await this.announcer.enqueueWebhooks(tx, this.store, changes);
          return { rule: changed, changes };
        });
        this.announcer.announce(changes);
        await this.reloadQuietly();
        return rule;
      } catch (error) {
        if ((error as { code?: string }).code !== DEADLOCK || attempt >= 3) throw error;
      }
    }
  }

  private async reloadQuietly(): Promise<void> {
    // The change is committed; a failed reload is repaired by the next poll.
    await this.reload().catch((error: unknown) => this.logger.warn({ msg: 'alarm rule reload failed', error: String(error) }));
  }
}
