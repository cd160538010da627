// The storage behind the cache: Redis when it is configured and up, process
// memory otherwise. Values are strings (JSON) except the latest-sample hashes,
// which merge per metric so a late, older sample never replaces a newer one.

import type { LatestPoints } from '../telemetry/sample';

export interface LatestUpdate {
  key: string;
  /** [metric, ts (epoch ms), value] */
  points: Array<[string, number, number]>;
}

export interface HotStore {
  readonly kind: 'redis' | 'memory';
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlS: number): Promise<void>;
  del(keys: string[]): Promise<number>;
  /** Glob pattern as Redis MATCH understands it; never a blocking KEYS. */
  delPattern(pattern: string): Promise<number>;
  /**
   * Merges newer points into latest hashes and resets their TTL, in one round
   * trip. An entry created by a merge holds only the metrics of that batch, so
   * it counts as complete (readable) only once a merge with `complete` set —
   * the full set loaded from the database — has gone into it.
   */
  mergeLatest(updates: LatestUpdate[], ttlS: number, complete: boolean): Promise<void>;
  /** The entry's points, or null when it is missing or not complete. */
  getLatest(key: string): Promise<LatestPoints | null>;
  /** Seconds to live; -2 when missing, -1 when it has no expiry (Redis semantics). */
  ttl(key: string): Promise<number>;
  countKeys(pattern: string): Promise<number>;
  memoryBytes(): Promise<number>;
}

/** Redis-style glob (only * ? and \ escapes are used by this service) to a RegExp. */
export function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\' && i + 1 < pattern.length) out += pattern[++i].replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else out += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`, 's');
}
