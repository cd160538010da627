// Bounded in-process store: TTL per entry and least-recently-used eviction
// once the entry or byte budget is exceeded (a Map iterates in insertion
// order, so re-inserting on access keeps the oldest use first).
import { globToRegExp, type HotStore, type LatestUpdate } from './hot-store';
import type { LatestPoints } from '../telemetry/sample';

interface LatestEntry {
  points: LatestPoints;
  complete: boolean;
}

interface Entry {
  value: string | LatestEntry;
  expiresAt: number; // epoch ms; Infinity = no expiry
  bytes: number;
}

export interface MemoryStoreLimits {
  maxEntries: number;
  maxBytes: number;
}

const DEFAULT_LIMITS: MemoryStoreLimits = { maxEntries: 100_000, maxBytes: 64 * 1024 * 1024 };

export class MemoryStore implements HotStore {
  readonly kind = 'memory' as const;
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly limits: MemoryStoreLimits = DEFAULT_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.remove(key, entry);
      return undefined;
    }
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }

  private put(key: string, value: string | LatestEntry, ttlS: number): void {
    const old = this.entries.get(key);
    if (old) this.remove(key, old);
    const bytes = key.length * 2 + (typeof value === 'string' ? value.length * 2 : Object.keys(value.points).length * 64);
    this.entries.set(key, { value, expiresAt: ttlS > 0 ? this.now() + ttlS * 1000 : Infinity, bytes });
    this.bytes += bytes;
    for (const [oldestKey, oldest] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.remove(oldestKey, oldest);
    }
  }

  async get(key: string): Promise<string | null> {
    const value = this.live(key)?.value;
    return typeof value === 'string' ? value : null;
  }

  async set(key: string, value: string, ttlS: number): Promise<void> {
    this.put(key, value, ttlS);
  }

  async del(keys: string[]): Promise<number> {
    let n = 0;
    for (const key of keys) {
      const entry = this.entries.get(key);
      if (entry) {
        // An expired entry counts as absent, as in Redis.
        if (entry.expiresAt > this.now()) n++;
        this.remove(key, entry);
      }
    }
    return n;
  }

  async delPattern(pattern: string): Promise<number> {
    const re = globToRegExp(pattern);
    return this.del([...this.entries.keys()].filter((k) => re.test(k)));
  }

  async mergeLatest(updates: LatestUpdate[], ttlS: number, complete: boolean): Promise<void> {
    for (const { key, points } of updates) {
      const entry = this.live(key);
      // Null prototype: a metric named like an Object.prototype member ('constructor') is just a key.
      const current: LatestEntry = entry && typeof entry.value === 'object' ? entry.value : { points: Object.create(null) as LatestPoints, complete: false };
      for (const [metric, ts, value] of points) {
        const have = current.points[metric];
        if (!have || have.ts < ts) current.points[metric] = { ts, value };
      }
      if (complete) current.complete = true;
      this.put(key, current, ttlS);
    }
  }

  async getLatest(key: string): Promise<LatestPoints | null> {
    const value = this.live(key)?.value;
    if (!value || typeof value !== 'object' || !value.complete) return null;
    return Object.assign(Object.create(null) as LatestPoints, value.points);
  }

  async ttl(key: string): Promise<number> {
    const entry = this.live(key);
    if (!entry) return -2;
    if (entry.expiresAt === Infinity) return -1;
    return Math.ceil((entry.expiresAt - this.now()) / 1000);
  }

  async countKeys(pattern: string): Promise<number> {
    const re = globToRegExp(pattern);
    const now = this.now();
    let n = 0;
    for (const [key, entry] of this.entries) if (entry.expiresAt > now && re.test(key)) n++;
    return n;
  }

  async memoryBytes(): Promise<number> {
    return this.bytes;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
