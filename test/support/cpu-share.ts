// `npm test` runs two test files at a time, one per core. Some files must not
// share the cores with some others:
//   'load'   keeps both cores busy (the soak, the series matrices);
//   'timing' asserts deadlines, detection times or live delivery that a
//            starved process misses (device status, fan-out, alarms);
//   'fault'  is a timing file that also asserts exact state changes of a
//            fault scenario (outage detected once, recovered once).
// Files of one group run together (load beside load, timing beside timing),
// never a load file beside a timing or fault file, and never two fault files
// at once. Light files (all the others) run beside anything.
//
// Built on PostgreSQL advisory locks, which die with their connection (also
// when a worker is killed): a group is a shared lock; entering a group goes
// through a short exclusive gate and succeeds only while the other group's
// lock is free. Without the shared PostgreSQL one file lock serialises them.
import { Client } from 'pg';
import { holdLock } from './cross-process-lock';
import { SHARED_POSTGRES_URL, serversAvailable } from './servers';

export type CpuShare = 'load' | 'timing' | 'fault';

const GATE = 7_400_001;
const GROUP: Record<'load' | 'timing', number> = { load: 7_400_002, timing: 7_400_003 };
const FAULT = 7_400_004;
const WAIT_MS = 20 * 60_000;

async function enter(client: Client, share: CpuShare): Promise<void> {
  const own = share === 'load' ? GROUP.load : GROUP.timing;
  const other = share === 'load' ? GROUP.timing : GROUP.load;
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    await client.query('SELECT pg_advisory_lock($1)', [GATE]);
    try {
      const [{ free }] = (await client.query<{ free: boolean }>('SELECT pg_try_advisory_lock($1) AS free', [other])).rows;
      if (free) {
        await client.query('SELECT pg_advisory_unlock($1)', [other]);
        await client.query('SELECT pg_advisory_lock_shared($1)', [own]);
        break;
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [GATE]);
    }
    if (Date.now() > deadline) throw new Error(`waited ${WAIT_MS} ms for the ${share} group's turn`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (share === 'fault') await client.query('SELECT pg_advisory_lock($1)', [FAULT]);
}

/** Call at the top of a test file: the whole file holds its place. */
export function shareCpuAs(share: CpuShare): void {
  let release: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (!serversAvailable('postgres')) {
      release = await holdLock('cpu-share', WAIT_MS);
      return;
    }
    const client = new Client({ connectionString: SHARED_POSTGRES_URL });
    await client.connect();
    try {
      await enter(client, share);
    } catch (error) {
      await client.end();
      throw error;
    }
    release = () => client.end();
  }, WAIT_MS + 60_000);
  afterAll(async () => {
    await release?.();
  });
}
