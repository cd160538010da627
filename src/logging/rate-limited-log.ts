// Lets a noisy source (bad device payloads, repeated failures) log at most
// `perWindow` lines per window, then one summary of how many were suppressed.
export class RateLimitedLog {
  private windowStart = 0;
  private emitted = 0;
  private suppressed = 0;

  constructor(
    private readonly emit: (message: string, fields: Record<string, unknown>) => void,
    private readonly perWindow = 10,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  log(message: string, fields: Record<string, unknown> = {}): void {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0) this.emit(`suppressed ${this.suppressed} similar log lines`, { suppressed: this.suppressed });
      this.windowStart = t;
      this.emitted = 0;
      this.suppressed = 0;
    }
    if (this.emitted < this.perWindow) {
      this.emitted++;
      this.emit(message, fields);
    } else {
      this.suppressed++;
    }
  }
}
