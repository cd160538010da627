// Redis implementation of HotStore. Latest-sample merges run as one Lua
// script per device key (each key stays in one hash slot, so it works on
// Redis Cluster too), all pipelined into a single round trip per batch.
import type Redis from 'ioredis';
import type { ChainableCommander, Cluster } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import type { HotStore, LatestPoints, LatestUpdate } from './hot-store';

// KEYS[1] = latest hash; ARGV[1] = ttl ms; ARGV[2] = "1" when the points are
// the device's full set; then metric, ts, value triples. A field holds
// "ts|value" and is replaced only by a strictly newer ts. The field "~complete"
// (metric names cannot contain "~") marks an entry readable.
const COMPLETE_FIELD = '~complete';
const MERGE_LATEST_LUA = `
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], '${COMPLETE_FIELD}', '1') end
for i = 3, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  if (not cur) or tonumber(string.match(cur, '^[^|]+')) < tonumber(ARGV[i + 1]) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. '|' .. ARGV[i + 2])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1`;

const SCAN_COUNT = 500;

type RedisWithScripts = (Redis | Cluster) & {
  mergeLatest(key: string, ...args: Array<string | number>): Promise<number>;
};

export class RedisStore implements HotStore {
  readonly kind = 'redis' as const;
  private readonly redis: RedisWithScripts;

  private readonly cluster: boolean;

  constructor(redis: Redis | Cluster) {
    if (!('mergeLatest' in redis)) redis.defineCommand('mergeLatest', { numberOfKeys: 1, lua: MERGE_LATEST_LUA });
    this.redis = redis as RedisWithScripts;
    this.cluster = 'nodes' in redis && typeof redis.nodes === 'function';
  }

  /**
   * Runs one command per item in a single round trip and returns the results
   * in item order. On Redis Cluster a pipeline may only touch one hash slot,
   * so items are grouped by their key's slot into parallel pipelines.
   */
  private async pipelined<T>(items: T[], keyOf: (item: T) => string, add: (pipeline: ChainableCommander, item: T) => void): Promise<unknown[]> {
    if (items.length === 0) return [];
    const groups = new Map<number, number[]>();
    items.forEach((item, i) => {
      const slot = this.cluster ? calculateSlot(keyOf(item)) : 0;
      const group = groups.get(slot);
      if (group) group.push(i);
      else groups.set(slot, [i]);
    });
    const results = new Array<unknown>(items.length);
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        const pipeline = this.redis.pipeline();
        for (const i of indexes) add(pipeline, items[i]);
        const values = await execOrThrow(pipeline.exec());
        indexes.forEach((itemIndex, n) => {
          results[itemIndex] = values[n];
        });
      }),
    );
    return results;
  }

  get(key: string): Promise<string | null> {
    return this.redis.get(key);
  }

  async set(key: string, value: string, ttlS: number): Promise<void> {
    await this.redis.set(key, value, 'EX', ttlS);
  }

  async mget(keys: string[]): Promise<Array<string | null>> {
    // Per-key GETs rather than MGET: keys of different devices live in different cluster slots.
    return (await this.pipelined(keys, (k) => k, (p, k) => p.get(k))) as Array<string | null>;
  }

  async mset(entries: Array<{ key: string; value: string; ttlS: number }>): Promise<void> {
    await this.pipelined(entries, (e) => e.key, (p, e) => p.set(e.key, e.value, 'EX', e.ttlS));
  }

  async del(keys: string[]): Promise<number> {
    const results = await this.pipelined(keys, (k) => k, (p, k) => p.unlink(k));
    return results.reduce((n: number, value) => n + Number(value), 0);
  }

  async delPattern(pattern: string): Promise<number> {
    let deleted = 0;
    for await (const keys of this.scan(pattern)) deleted += await this.del(keys);
    return deleted;
  }

  async incr(key: string, ttlS: number): Promise<number> {
    const [value] = await execOrThrow(this.redis.multi().incr(key).expire(key, ttlS, 'NX').exec());
    return Number(value);
  }

  ttl(key: string): Promise<number> {
    return this.redis.ttl(key);
  }

  async mergeLatest(updates: LatestUpdate[], ttlS: number, complete: boolean): Promise<void> {
    const ttlMs = ttlS * 1000;
    await this.pipelined(
      updates,
      (u) => u.key,
      (pipeline, { key, points }) => {
        const args: Array<string | number> = [ttlMs, complete ? '1' : '0'];
        for (const [metric, ts, value] of points) args.push(metric, ts, value);
        (pipeline as unknown as { mergeLatest(key: string, ...args: Array<string | number>): void }).mergeLatest(key, ...args);
      },
    );
  }

  async getLatest(key: string): Promise<LatestPoints | null> {
    const hash = await this.redis.hgetall(key);
    if (hash[COMPLETE_FIELD] === undefined) return null;
    const points: LatestPoints = Object.create(null);
    for (const metric of Object.keys(hash)) {
      if (metric === COMPLETE_FIELD) continue;
      const raw = hash[metric];
      const bar = raw.indexOf('|');
      points[metric] = { ts: Number(raw.slice(0, bar)), value: Number(raw.slice(bar + 1)) };
    }
    return points;
  }

  async countKeys(pattern: string): Promise<number> {
    let n = 0;
    for await (const keys of this.scan(pattern)) n += keys.length;
    return n;
  }

  async memoryBytes(): Promise<number> {
    const info = await this.redis.info('memory');
    const match = /used_memory:(\d+)/.exec(info);
    return match ? Number(match[1]) : 0;
  }

  /** SCAN in batches on every master (one node when standalone). */
  private async *scan(pattern: string): AsyncGenerator<string[]> {
    const nodes = 'nodes' in this.redis && typeof this.redis.nodes === 'function' ? this.redis.nodes('master') : [this.redis as Redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
        cursor = next;
        if (keys.length > 0) yield keys;
      } while (cursor !== '0');
    }
  }
}

async function execOrThrow(result: Promise<Array<[Error | null, unknown]> | null>): Promise<unknown[]> {
  const rows = (await result) ?? [];
  return rows.map(([error, value]) => {
    if (error) throw error;
    return value;
  });
}
