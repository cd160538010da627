// The in-process fallback cache: Redis semantics (TTL, glob deletes) and its bounds (LRU by entries and by bytes), on an injected clock.
import { MemoryStore } from './memory-store';

function storeWithClock(limits = { maxEntries: 1000, maxBytes: 1024 * 1024 }) {
  const clock = { now: 1_000_000 };
  const store = new MemoryStore(limits, () => clock.now);
  return { store, clock };
}

describe('MemoryStore', () => {
  describe('TTL', () => {
    it('serves a value until its TTL has passed, then forgets it', async () => {
      const { store, clock } = storeWithClock();
      await store.set('k', 'v', 10);
      clock.now += 9_999;
      expect(await store.get('k')).toBe('v');
      clock.now += 1;
      expect(await store.get('k')).toBeNull();
      expect(await store.countKeys('*')).toBe(0);
    });

    it('expires latest hashes too', async () => {
      const { store, clock } = storeWithClock();
      await store.mergeLatest([{ key: 'l', points: [['t', 1, 1]] }], 5, true);
      clock.now += 4_999;
      expect(await store.getLatest('l')).not.toBeNull();
      clock.now += 1;
      expect(await store.getLatest('l')).toBeNull();
    });

    it('keeps a value set with TTL 0 without expiry', async () => {
      const { store, clock } = storeWithClock();
      await store.set('forever', 'v', 0);
      clock.now += 365 * 24 * 3600_000;
      expect(await store.get('forever')).toBe('v');
    });

    it('a key set again gets the new TTL', async () => {
      const { store, clock } = storeWithClock();
      await store.set('k', 'a', 2);
      clock.now += 1_500;
      await store.set('k', 'b', 2);
      clock.now += 1_500;
      expect(await store.get('k')).toBe('b');
    });

    it('deleting an expired key counts as deleting nothing, as in Redis', async () => {
      const { store, clock } = storeWithClock();
      await store.set('k', 'v', 1);
      clock.now += 1_000;
      expect(await store.del(['k'])).toBe(0);
    });
  });

  describe('LRU eviction', () => {
    it('evicts the least recently used entry once maxEntries is exceeded', async () => {
      const { store } = storeWithClock({ maxEntries: 3, maxBytes: 1024 * 1024 });
      await store.set('a', '1', 60);
      await store.set('b', '2', 60);
      await store.set('c', '3', 60);
      expect(await store.get('a')).toBe('1'); // a is now the most recently used
      await store.set('d', '4', 60);
      expect(await store.get('b')).toBeNull();
      expect(await store.get('a')).toBe('1');
      expect(await store.get('c')).toBe('3');
      expect(await store.get('d')).toBe('4');
      expect(await store.countKeys('*')).toBe(3);
    });

    it('a read of a latest hash also counts as a use', async () => {
      const { store } = storeWithClock({ maxEntries: 2, maxBytes: 1024 * 1024 });
      await store.mergeLatest([{ key: 'l', points: [['t', 1, 1]] }], 60, true);
      await store.set('x', 'x', 60);
      expect(await store.getLatest('l')).not.toBeNull();
      await store.set('y', 'y', 60);
      expect(await store.get('x')).toBeNull();
      expect(await store.getLatest('l')).not.toBeNull();
    });

    it('evicts least recently used entries once maxBytes is exceeded, and accounts bytes', async () => {
      // Each entry: 2-char key + 20-char value, UTF-16 => 44 bytes; two fit in 100, three do not.
      const { store } = storeWithClock({ maxEntries: 1000, maxBytes: 100 });
      const value = 'x'.repeat(20);
      await store.set('k1', value, 60);
      await store.set('k2', value, 60);
      expect(await store.memoryBytes()).toBe(88);
      await store.get('k1');
      await store.set('k3', value, 60);
      expect(await store.get('k2')).toBeNull();
      expect(await store.get('k1')).toBe(value);
      expect(await store.get('k3')).toBe(value);
      expect(await store.memoryBytes()).toBe(88);
      expect(await store.memoryBytes()).toBeLessThanOrEqual(100);
    });

    it('frees the bytes of deleted, replaced and expired entries', async () => {
      const { store, clock } = storeWithClock();
      await store.set('a', 'xxxx', 1);
      await store.set('b', 'yyyy', 60);
      const both = await store.memoryBytes();
      await store.set('b', 'yy', 60);
      expect(await store.memoryBytes()).toBe(both - 4);
      await store.del(['b']);
      clock.now += 1_000;
      await store.get('a');
      expect(await store.memoryBytes()).toBe(0);
    });

    it('clear() empties the store', async () => {
      const { store } = storeWithClock();
      await store.set('a', '1', 60);
      await store.mergeLatest([{ key: 'l', points: [['t', 1, 1]] }], 60, true);
      store.clear();
      expect(await store.countKeys('*')).toBe(0);
      expect(await store.memoryBytes()).toBe(0);
      expect(await store.get('a')).toBeNull();
    });
  });

  describe('delPattern (Redis glob)', () => {
    it('deletes exactly the keys the glob matches and answers how many', async () => {
      const { store } = storeWithClock();
      const keys = [
        'telemetry:latest:{dev-1}',
        'telemetry:latest:{dev-2}',
        'telemetry:stats:{dev-1}',
        'telemetry:hourly:{dev-1}:t:1:2',
        'telemetry:hourly:{dev-1}:h:1:2',
        'telemetry:hourly:{dev-10}:t:1:2',
        'telemetry:dashboard',
        'other:latest:{dev-1}',
      ];
      for (const k of keys) await store.set(k, 'v', 60);

      expect(await store.delPattern('telemetry:hourly:{dev-1}:*')).toBe(2);
      expect(await store.get('telemetry:hourly:{dev-10}:t:1:2')).toBe('v');

      expect(await store.delPattern('telemetry:latest:*')).toBe(2);
      expect(await store.get('other:latest:{dev-1}')).toBe('v');

      // '?' is exactly one character; the pattern is anchored at both ends.
      expect(await store.delPattern('telemetry:stats:{dev-?}')).toBe(1);
      expect(await store.delPattern('telemetry:dashboar')).toBe(0);
      expect(await store.delPattern('telemetry:dashboard')).toBe(1);
      expect((await Promise.all(keys.map((k) => store.get(k)))).filter((v) => v !== null)).toHaveLength(2);
    });

    it('treats regex characters literally and honours backslash escapes', async () => {
      const { store } = storeWithClock();
      await store.set('a.b', 'v', 60);
      await store.set('axb', 'v', 60);
      await store.set('star*', 'v', 60);
      await store.set('starX', 'v', 60);
      expect(await store.delPattern('a.b')).toBe(1);
      expect(await store.get('axb')).toBe('v');
      expect(await store.delPattern('star\\*')).toBe(1);
      expect(await store.get('starX')).toBe('v');
    });

    it('counts the keys a glob matches', async () => {
      const { store } = storeWithClock();
      await store.set('telemetry:a', 'v', 60);
      await store.set('telemetry:b', 'v', 60);
      await store.set('x', 'v', 60);
      expect(await store.countKeys('telemetry:*')).toBe(2);
    });
  });

  describe('mergeLatest / getLatest', () => {
    it('does not serve an entry that only ingest merges created until a complete load went into it', async () => {
      const store = new MemoryStore();
      await store.mergeLatest([{ key: 'l', points: [['t', 5, 2]] }], 60, false);
      expect(await store.getLatest('l')).toBeNull();
      await store.mergeLatest(
        [
          {
            key: 'l',
            points: [
              ['t', 1, 1],
              ['h', 1, 60],
            ],
          },
        ],
        60,
        true,
      );
      expect(await store.getLatest('l')).toEqual({ t: { ts: 5, value: 2 }, h: { ts: 1, value: 60 } });
      await store.mergeLatest([{ key: 'l', points: [['t', 6, 3]] }], 60, false);
      expect(await store.getLatest('l')).toEqual({ t: { ts: 6, value: 3 }, h: { ts: 1, value: 60 } });
    });

    it('never moves a metric backwards in time, within one update or across updates', async () => {
      const { store } = storeWithClock();
      await store.mergeLatest(
        [
          {
            key: 'l',
            points: [
              ['t', 2000, 2],
              ['h', 1000, 10],
            ],
          },
        ],
        60,
        true,
      );
      await store.mergeLatest(
        [
          {
            key: 'l',
            points: [
              ['t', 1000, 1],
              ['h', 3000, 30],
            ],
          },
        ],
        60,
        true,
      );
      expect(await store.getLatest('l')).toEqual({ t: { ts: 2000, value: 2 }, h: { ts: 3000, value: 30 } });
      // An equal timestamp does not replace the stored value either (Redis script: strictly newer).
      await store.mergeLatest([{ key: 'l', points: [['t', 2000, 99]] }], 60, true);
      expect((await store.getLatest('l'))?.t).toEqual({ ts: 2000, value: 2 });
      await store.mergeLatest([{ key: 'l', points: [['t', 2001, 3]] }], 60, true);
      expect((await store.getLatest('l'))?.t).toEqual({ ts: 2001, value: 3 });
    });

    it('keeps metrics not named in an update and refreshes the TTL', async () => {
      const { store, clock } = storeWithClock();
      await store.mergeLatest([{ key: 'l', points: [['a', 1, 1]] }], 10, true);
      clock.now += 8_000;
      await store.mergeLatest([{ key: 'l', points: [['b', 2, 2]] }], 10, true);
      clock.now += 8_000;
      expect(await store.getLatest('l')).toEqual({ a: { ts: 1, value: 1 }, b: { ts: 2, value: 2 } });
    });

    it('updates several device keys in one call', async () => {
      const { store } = storeWithClock();
      await store.mergeLatest(
        [
          { key: 'l1', points: [['t', 1, 1]] },
          { key: 'l2', points: [['t', 2, 2]] },
        ],
        60,
        true,
      );
      expect(await store.getLatest('l1')).toEqual({ t: { ts: 1, value: 1 } });
      expect(await store.getLatest('l2')).toEqual({ t: { ts: 2, value: 2 } });
    });

    it('a returned object is a copy: mutating it does not change the store', async () => {
      const { store } = storeWithClock();
      await store.mergeLatest([{ key: 'l', points: [['t', 1, 1]] }], 60, true);
      const got = await store.getLatest('l');
      (got as Record<string, unknown>).x = { ts: 5, value: 5 };
      expect(await store.getLatest('l')).toEqual({ t: { ts: 1, value: 1 } });
    });

    it("handles metrics named like Object.prototype members ('constructor', 'toString', '__proto__')", async () => {
      const { store } = storeWithClock();
      await store.mergeLatest(
        [
          {
            key: 'l',
            points: [
              ['constructor', 1, 7],
              ['toString', 1, 8],
              ['__proto__', 1, 9],
              ['hasOwnProperty', 1, 10],
            ],
          },
        ],
        60,
        true,
      );
      // Older points must not replace them (a prototype member would look like an existing point without ts).
      await store.mergeLatest(
        [
          {
            key: 'l',
            points: [
              ['constructor', 0, -1],
              ['__proto__', 0, -1],
            ],
          },
        ],
        60,
        true,
      );
      const got = await store.getLatest('l');
      expect(got).not.toBeNull();
      expect(Object.keys(got as object).sort()).toEqual(['__proto__', 'constructor', 'hasOwnProperty', 'toString']);
      expect(Object.getOwnPropertyDescriptor(got, 'constructor')?.value).toEqual({ ts: 1, value: 7 });
      expect(Object.getOwnPropertyDescriptor(got, 'toString')?.value).toEqual({ ts: 1, value: 8 });
      expect(Object.getOwnPropertyDescriptor(got, '__proto__')?.value).toEqual({ ts: 1, value: 9 });
    });

    it('a metric named constructor on a fresh key is stored (not mistaken for an existing newer point)', async () => {
      const { store } = storeWithClock();
      await store.mergeLatest([{ key: 'fresh', points: [['constructor', 5, 1.5]] }], 60, true);
      expect(Object.getOwnPropertyDescriptor(await store.getLatest('fresh'), 'constructor')?.value).toEqual({ ts: 5, value: 1.5 });
    });

    it('get() on a latest hash answers null, getLatest() on a string answers null', async () => {
      const { store } = storeWithClock();
      await store.mergeLatest([{ key: 'l', points: [['t', 1, 1]] }], 60, true);
      await store.set('s', 'v', 60);
      expect(await store.get('l')).toBeNull();
      expect(await store.getLatest('s')).toBeNull();
      expect(await store.getLatest('missing')).toBeNull();
    });
  });
});
