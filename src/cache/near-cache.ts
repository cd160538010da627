// A small per-instance cache in front of the shared one, for the hottest read
// (a device's latest values): a hit costs a Map lookup instead of a Redis
// round trip. Entries live at most `lifeMs`, which bounds how long a change
// made elsewhere (another instance's commit or DELETE, an outage resync) can
// go unseen here; this instance's own commits update entries in place and its
// own deletions remove them at once.
//
// A read that went to the shared cache may come back after a local write has
// changed the entry it is about to store (the read saw the older value): every
// local write bumps an epoch, and a value read before the latest bump is not
// stored.

interface Entry<V> {
  value: V;
  expiresAt: number;
}

export class NearCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private writes = 0;

  constructor(
    private readonly lifeMs: number,
    private readonly maxEntries = 100_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Pass to `set` the value this had before the read started. */
  get epoch(): number {
    return this.writes;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Stores a value read from the shared cache, unless a local write happened since `epochAtRead`. */
  set(key: string, value: V, epochAtRead: number): void {
    if (this.lifeMs <= 0 || epochAtRead !== this.writes) return;
    this.entries.delete(key); // re-insert: Map order is then oldest first
    this.entries.set(key, { value, expiresAt: this.now() + this.lifeMs });
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
  }

  /** Replaces a live entry's value (keeping its expiry); nothing when there is none. */
  update(key: string, change: (value: V) => V): void {
    this.writes++;
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > this.now()) entry.value = change(entry.value);
  }

  delete(key: string): void {
    this.writes++;
    this.entries.delete(key);
  }

  clear(): void {
    this.writes++;
    this.entries.clear();
  }
}
