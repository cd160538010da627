import { ScrapedCount } from './scraped-count';

describe('ScrapedCount', () => {
  it('reuses a fresh value and reads again once it is older than maxAgeMs', async () => {
    const clock = { now: 0 };
    const load = jest.fn(async () => clock.now);
    const count = new ScrapedCount(load, { maxAgeMs: 1000, timeoutMs: 100 }, () => clock.now);
    expect(await count.get()).toBe(0);
    clock.now = 999;
    expect(await count.get()).toBe(0);
    clock.now = 1000;
    expect(await count.get()).toBe(1000);
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('answers within its timeout with the last value while the query hangs, and runs one query at a time', async () => {
    let release!: (v: number) => void;
    let calls = 0;
    const count = new ScrapedCount(
      () => {
        calls++;
        return calls === 1 ? Promise.resolve(7) : new Promise<number>((resolve) => (release = resolve));
      },
      { maxAgeMs: 0, timeoutMs: 20 },
    );
    expect(await count.get()).toBe(7);
    expect(await count.get()).toBe(7); // hanging: the last value after 20 ms
    expect(await count.get()).toBe(7); // still the same query, not a second one
    expect(calls).toBe(2);
    release(9);
    await new Promise((r) => setTimeout(r, 0));
    expect(await count.get()).toBe(9);
  });

  it('reports a failure once per call and falls back to the last value', async () => {
    const errors: unknown[] = [];
    let fail = false;
    const count = new ScrapedCount(
      async () => {
        if (fail) throw new Error('down');
        return 3;
      },
      { maxAgeMs: 0, timeoutMs: 100, onError: (e) => errors.push(e) },
    );
    expect(await count.get()).toBe(3);
    fail = true;
    expect(await count.get()).toBe(3);
    expect(errors).toHaveLength(1);
  });

  it('has no value before the first success', async () => {
    const count = new ScrapedCount(() => Promise.reject(new Error('down')), { maxAgeMs: 0, timeoutMs: 100 });
    expect(await count.get()).toBeUndefined();
  });
});
