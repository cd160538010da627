// A figure read from PostgreSQL when Prometheus scrapes (so every instance
// reports the same fleet-wide value). A scrape must answer within its own
// timeout whatever the database does: it waits at most `timeoutMs` for the
// query, reuses a result younger than `maxAgeMs`, runs one query at a time,
// and otherwise reports the last value it had.
export class ScrapedCount<T> {
  private last: { at: number; value: T } | undefined;
  private running: Promise<T | undefined> | undefined;

  constructor(
    private readonly load: () => Promise<T>,
    private readonly options: { maxAgeMs: number; timeoutMs: number; onError?: (error: unknown) => void },
    private readonly now: () => number = Date.now,
  ) {}

  /** The current value, or the last known one (undefined before the first success). */
  async get(): Promise<T | undefined> {
    const last = this.last;
    if (last && this.now() - last.at < this.options.maxAgeMs) return last.value;
    this.running ??= this.load()
      .then(
        (value) => {
          this.last = { at: this.now(), value };
          return value;
        },
        (error: unknown) => {
          this.options.onError?.(error);
          return this.last?.value;
        },
      )
      .finally(() => {
        this.running = undefined;
      });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), this.options.timeoutMs);
    });
    const value = await Promise.race([this.running, timedOut]);
    clearTimeout(timer);
    return value ?? this.last?.value;
  }
}
