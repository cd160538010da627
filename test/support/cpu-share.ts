// `npm test` runs two test files at a time, one per core. Two kinds of file
// must not share the cores: 'timing' files assert deadlines, detection times
// and state changes that a starved process misses (fault scenarios, device
// status, latency bounds), and 'load' files keep both cores busy (the soak,
// the series matrices). A timing file runs beside light files only; load
// files may run together. Files that are neither do not take part.
//
// PostgreSQL advisory locks give the exclusive/shared pair and are released
// with their connection, also when a worker dies; without the shared
// PostgreSQL a file lock serialises both kinds.
import { Client } from 'pg';
import { holdLock } from './cross-process-lock';
import { SHARED_POSTGRES_URL, serversAvailable } from './servers';

const LOCK_KEY = 7_400_001;
const WAIT_MS = 20 * 60_000;

/** Call at the top of a test file: the whole file holds the lock. */
export function shareCpuAs(kind: 'timing' | 'load'): void {
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (!serversAvailable('postgres')) {
      release = await holdLock('cpu-share', WAIT_MS);
      return;
    }
    const client = new Client({ connectionString: SHARED_POSTGRES_URL });
    await client.connect();
    await client.query(kind === 'timing' ? 'SELECT pg_advisory_lock($1)' : 'SELECT pg_advisory_lock_shared($1)', [LOCK_KEY]);
    release = () => client.end();
  }, WAIT_MS);
  afterAll(async () => {
    await release?.();
  });
}
