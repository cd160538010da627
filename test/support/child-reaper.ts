// Child processes a test started (services, redis-servers) are SIGKILLed when
// the test process exits, so a crashed or timed-out test leaves nothing running.
import type { ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();
let hookInstalled = false;

export function reapOnExit(child: ChildProcess): void {
  if (!hookInstalled) {
    hookInstalled = true;
    process.once('exit', () => {
      for (const c of running) {
        if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
          try {
            process.kill(c.pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    });
  }
  running.add(child);
  child.once('exit', () => running.delete(child));
}
