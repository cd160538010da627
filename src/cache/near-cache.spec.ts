import { NearCache } from './near-cache';

function cacheWithClock(lifeMs = 1000, max = 100) {
  const clock = { now: 1_000_000 };
  return { cache: new NearCache<string>(lifeMs, max, () => clock.now), clock };
}

describe('NearCache', () => {
  it('serves a stored value for its life, then forgets it', () => {
    const { cache, clock } = cacheWithClock();
    cache.set('a', 'v', cache.epoch);
    clock.now += 999;
    expect(cache.get('a')).toBe('v');
    clock.now += 1;
    expect(cache.get('a')).toBeUndefined();
  });

  it('does not store a value read before a local write (the read may predate it)', () => {
    const { cache } = cacheWithClock();
    const before = cache.epoch;
    cache.update('a', (v) => `${v}!`); // a commit while the shared read was under way
    cache.set('a', 'old', before);
    expect(cache.get('a')).toBeUndefined();
    cache.set('a', 'fresh', cache.epoch);
    expect(cache.get('a')).toBe('fresh');
  });

  it('updates a live entry in place and keeps its expiry', () => {
    const { cache, clock } = cacheWithClock();
    cache.set('a', 'v1', cache.epoch);
    clock.now += 600;
    cache.update('a', (v) => `${v}+`);
    expect(cache.get('a')).toBe('v1+');
    clock.now += 400;
    expect(cache.get('a')).toBeUndefined();
    cache.update('b', () => 'never stored');
    expect(cache.get('b')).toBeUndefined();
  });

  it('delete and clear remove entries at once', () => {
    const { cache } = cacheWithClock();
    cache.set('a', '1', cache.epoch);
    cache.set('b', '2', cache.epoch);
    cache.delete('a');
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBe('2');
    cache.clear();
    expect(cache.get('b')).toBeUndefined();
  });

  it('drops the oldest entry beyond its size', () => {
    const { cache } = cacheWithClock(1000, 2);
    cache.set('a', '1', cache.epoch);
    cache.set('b', '2', cache.epoch);
    cache.set('c', '3', cache.epoch);
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('c')).toBe('3');
  });

  it('stores nothing when its life is 0', () => {
    const { cache } = cacheWithClock(0);
    cache.set('a', '1', cache.epoch);
    expect(cache.get('a')).toBeUndefined();
  });
});
