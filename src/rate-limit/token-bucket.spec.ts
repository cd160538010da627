// The pure token-bucket step the memory fallback uses (docs/api.md WebSocket: 100
// tokens refilling continuously at 100 per 60 s; a refused message costs no
// token). The Redis Lua version is exercised end to end in
// test/integration/realtime*.test.ts.
import { takeFromBucket, type TakeResult } from './token-bucket';

const CAPACITY = 100;
const WINDOW_MS = 60_000;

/** A bucket driven by a fake clock. */
function bucket(capacity = CAPACITY, windowMs = WINDOW_MS) {
  let state: Parameters<typeof takeFromBucket>[0];
  return {
    take(now: number): TakeResult {
      const { bucket: next, result } = takeFromBucket(state, capacity, windowMs, now);
      state = next;
      return result;
    },
    get tokens(): number | undefined {
      return state?.tokens;
    },
    /** How many of `n` takes at `now` are allowed. */
    burst(now: number, n: number): TakeResult[] {
      return Array.from({ length: n }, () => this.take(now));
    },
  };
}

const allowed = (results: TakeResult[]) => results.filter((r) => r.allowed).length;

describe('takeFromBucket', () => {
  const T0 = 1_750_000_000_000;

  it('lets 100 through, refuses the 101st with retryAfterMs ≈ 600 ms', () => {
    const b = bucket();
    const first = b.burst(T0, 100);
    expect(first.every((r) => r.allowed && r.retryAfterMs === 0)).toBe(true);
    const refused = b.take(T0);
    expect(refused.allowed).toBe(false);
    // One token takes 60 000 / 100 = 600 ms to come back.
    expect(refused.retryAfterMs).toBeGreaterThanOrEqual(590);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(600);
  });

  it('a new bucket starts full', () => {
    const b = bucket();
    expect(b.take(T0)).toEqual({ allowed: true, retryAfterMs: 0 });
    expect(b.tokens).toBe(CAPACITY - 1);
  });

  it('refills continuously at 100 per 60 s (≈1.67/s): 3 s later 5 pass and the 6th is refused', () => {
    const b = bucket();
    expect(allowed(b.burst(T0, 101))).toBe(100);
    const later = b.burst(T0 + 3000, 6);
    expect(later.map((r) => r.allowed)).toEqual([true, true, true, true, true, false]);
    expect(later[5].retryAfterMs).toBeGreaterThan(0);
    expect(later[5].retryAfterMs).toBeLessThanOrEqual(600);
  });

  it('the retry hint is honest: refused just before it, allowed at it', () => {
    const b = bucket();
    b.burst(T0, 100);
    const refused = b.take(T0 + 100);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThanOrEqual(499);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(501);
    expect(b.take(T0 + 100 + refused.retryAfterMs).allowed).toBe(true);
  });

  it("each refusal's hint is honoured, also after earlier too-early retries", () => {
    const b = bucket();
    b.burst(T0, 100);
    let t = T0 + 100;
    const first = b.take(t);
    expect(first.allowed).toBe(false);
    t += first.retryAfterMs - 5; // too early
    const second = b.take(t);
    expect(second.allowed).toBe(false);
    expect(second.retryAfterMs).toBeGreaterThanOrEqual(4);
    expect(second.retryAfterMs).toBeLessThanOrEqual(6);
    expect(b.take(t + second.retryAfterMs).allowed).toBe(true);
  });

  it('a refused message costs no token', () => {
    const b = bucket();
    b.burst(T0, 100);
    // Hammering while empty must not push the bucket into debt.
    for (let t = 0; t < 599; t += 10) expect(b.take(T0 + t).allowed).toBe(false);
    expect(b.take(T0 + 600).allowed).toBe(true);
  });

  it('never holds more than its capacity, however long it was idle', () => {
    const b = bucket();
    b.burst(T0, 100);
    const afterIdle = b.burst(T0 + 24 * 3600_000, 101);
    expect(allowed(afterIdle)).toBe(100);
    expect(afterIdle[100].allowed).toBe(false);
    expect(b.tokens).toBeGreaterThanOrEqual(0);
    expect(b.tokens).toBeLessThan(1);
  });

  it('a partly used bucket refills only up to capacity', () => {
    const b = bucket();
    b.burst(T0, 10); // 90 left
    const results = b.burst(T0 + 10 * 60_000, 101); // refill of 1000 tokens, capped at 100
    expect(allowed(results)).toBe(100);
  });

  it('a clock that goes backwards neither refills nor breaks the bucket', () => {
    const b = bucket();
    b.burst(T0, 100);
    const r = b.take(T0 - 5000);
    expect(r.allowed).toBe(false);
    expect(Number.isFinite(r.retryAfterMs)).toBe(true);
    expect(r.retryAfterMs).toBeGreaterThan(0);
    expect(b.take(T0 - 5000 + 600).allowed).toBe(true);
  });

  it('uses the configured capacity and window (10 per 1 s)', () => {
    const b = bucket(10, 1000);
    expect(allowed(b.burst(T0, 11))).toBe(10);
    const refused = b.take(T0);
    expect(refused.retryAfterMs).toBe(100);
    expect(allowed(b.burst(T0 + 500, 6))).toBe(5);
  });
});
