// A lock between test processes (Jest workers, or two checkouts running at
// once): an atomic mkdir in the temp dir. A lock left by a dead process is
// taken over. Returns the release function.
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function holdLock(name: string, timeoutMs: number): Promise<() => Promise<void>> {
  const dir = join(tmpdir(), `telemetry-hub-${name}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(join(dir, 'pid'), String(process.pid));
      return () => rm(dir, { recursive: true, force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number(await readFile(join(dir, 'pid'), 'utf8').catch(() => '0'));
    let ownerAlive = true;
    if (owner > 0) {
      try {
        process.kill(owner, 0);
      } catch {
        ownerAlive = false;
      }
    } else {
      // Between mkdir and writeFile, or a crash right there: stale after a minute.
      const age = Date.now() - ((await stat(dir).catch(() => undefined))?.mtimeMs ?? Date.now());
      ownerAlive = age < 60_000;
    }
    if (!ownerAlive) {
      await rm(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${name} is still locked by pid ${owner} after ${timeoutMs} ms (${dir})`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
