// The first minute of a new user, with the built service as its own process:
// a port already taken (a Mosquitto on 1883 is common) or a database that
// cannot be reached is one line on stderr and exit code 1, never a stack
// trace; misspelt variables are pointed out; `.env` is read (the real
// environment wins over it); and SIGTERM to `npm start` reaches the service.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppProcess, BUILT_ENTRY, buildService, PROJECT_ROOT, startAppProcess } from '../support/app-process';
import { reapOnExit } from '../support/child-reaper';
import { freePort, waitFor } from '../support/free-port';

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs dist/main.js with only PATH and `env`, in an empty directory unless `cwd` is given, until it exits. */
function runService(env: Record<string, string>, cwd = mkdtempSync(join(tmpdir(), 'th-startup-'))): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BUILT_ENTRY], { cwd, env: { PATH: process.env.PATH ?? '', ...env } });
    reapOnExit(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the service did not exit within 60 s\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Another process listening on a port, as a broker already running there would. */
async function holdPort(host: string): Promise<{ port: number; release: () => void }> {
  const holder = spawn(
    process.execPath,
    ['-e', `const s = require('net').createServer(); s.listen(0, ${JSON.stringify(host)}, () => console.log(s.address().port));`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  reapOnExit(holder);
  const port = await new Promise<number>((resolve, reject) => {
    holder.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    holder.once('exit', (code) => reject(new Error(`port holder exited (${code})`)));
  });
  return { port, release: () => holder.kill('SIGKILL') };
}

function linesOf(text: string): string[] {
  return text.split('\n').filter((line) => line.length > 0);
}

/** No stack frames: what a user sees is the sentence, not the code path. */
function expectNoStackTrace(outcome: Outcome): void {
  expect(`${outcome.stdout}\n${outcome.stderr}`).not.toMatch(/^\s+at .+[:(]/m);
}

describe('start-up of the built service', () => {
  beforeAll(() => buildService(), 180_000);

  describe('a configuration problem is one line and exit code 1', () => {
    it('names MQTT_PORT when another process holds it, with both ways out', async () => {
      const broker = await holdPort('127.0.0.1');
      try {
        const outcome = await runService({ MQTT_PORT: String(broker.port), PORT: String(await freePort()) });
        expect(outcome.code).toBe(1);
        expect(outcome.stdout).toBe('');
        const lines = linesOf(outcome.stderr);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(new RegExp(`^telemetry-hub: MQTT_PORT ${broker.port} is already in use`));
        expect(lines[0]).toContain('MQTT_PORT=<free port>');
        expect(lines[0]).toContain(`MQTT_URL=mqtt://127.0.0.1:${broker.port}`);
        expectNoStackTrace(outcome);
      } finally {
        broker.release();
      }
    });

    it('names PORT when another process holds it', async () => {
      const other = await holdPort('0.0.0.0');
      try {
        const outcome = await runService({ PORT: String(other.port), MQTT_PORT: '0' });
        expect(outcome.code).toBe(1);
        expect(outcome.stdout).toBe('');
        const lines = linesOf(outcome.stderr);
        expect(lines).toHaveLength(1);
        expect(lines[0]).toMatch(new RegExp(`^telemetry-hub: PORT ${other.port} is already in use.*PORT=<free port>`));
        expectNoStackTrace(outcome);
      } finally {
        other.release();
      }
    });

    it('names DATABASE_URL and its address, password masked, when nothing answers there', async () => {
      const closed = await freePort();
      const outcome = await runService({ DATABASE_URL: `postgres://hub:Pg-Secret-31@127.0.0.1:${closed}/telemetry`, MQTT_PORT: '0', PORT: '0' });
      expect(outcome.code).toBe(1);
      expect(outcome.stdout).toBe('');
      const lines = linesOf(outcome.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^telemetry-hub: DATABASE_URL postgres://hub:\\*\\*\\*@127\\.0\\.0\\.1:${closed}/telemetry cannot be reached: .*ECONNREFUSED`),
      );
      expect(outcome.stderr).not.toContain('Pg-Secret-31');
      expectNoStackTrace(outcome);
    });

    it('warns about misspelt variables by name, and quotes the PORT it was given', async () => {
      const outcome = await runService({ DATABSE_URL: 'postgres://u:Typo-Secret@db/x', MQTT_PROT: '1884', PORT: 'abc' });
      expect(outcome.code).toBe(1);
      expect(linesOf(outcome.stderr)).toEqual([
        'telemetry-hub: warning: unknown variable DATABSE_URL is ignored: did you mean DATABASE_URL?',
        'telemetry-hub: warning: unknown variable MQTT_PROT is ignored: did you mean MQTT_PORT?',
        'telemetry-hub: invalid environment variable PORT (given "abc"): must be a port number from 0 to 65535',
      ]);
      expect(outcome.stderr).not.toContain('Typo-Secret');
    });
  });

  it('reads .env from its working directory (the real environment wins over it), and starts on the memory cache with one warning when REDIS_URL does not answer', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'th-dotenv-'));
    const taken = await holdPort('127.0.0.1');
    // From .env only: the admin key and the data directory. MQTT_PORT is in both;
    // .env's is taken, so the service starts only if the environment's 0 wins.
    // REDIS_URL points where nothing listens: the service starts on the memory cache with one warning.
    const noRedis = await freePort();
    writeFileSync(
      join(dir, '.env'),
      [
        `ADMIN_API_KEY=key-from-dotenv`,
        `DATA_DIR=${join(dir, 'data')}`,
        `MQTT_PORT=${taken.port}`,
        `REDIS_URL=redis://:Redis-Secret-77@127.0.0.1:${noRedis}`,
        '',
      ].join('\n'),
    );
    let app: AppProcess | undefined;
    try {
      app = await startAppProcess({ MQTT_PORT: '0', DATABASE_URL: undefined, MQTT_URL: undefined }, { cwd: dir, readyTimeoutMs: 90_000 });
      const ready = await app.waitForOutput(/telemetry-hub is ready/, 30_000);
      const record = JSON.parse(ready) as Record<string, string>;
      expect(record.envFile).toBe(join(dir, '.env'));
      expect(record.page).toBe(`http://localhost:${app.port}/`);
      expect(record.metrics).toBe(`http://localhost:${app.port}/metrics`);
      expect(record.mqtt).toMatch(/^mqtt:\/\/localhost:\d+ \(embedded broker\)$/);
      expect(record.mqtt).not.toContain(`:${taken.port} `);
      const withKey = await app.fetch('/api/devices/nobody', { method: 'DELETE', headers: { 'x-api-key': 'key-from-dotenv' } });
      expect(withKey.status).toBe(404); // the admin key came from .env (403 without it)
      const embedded = readFileSync(join(dir, 'data', 'pg', 'PG_VERSION'), 'utf8');
      expect(embedded.trim()).toMatch(/^\d+$/); // DATA_DIR came from .env
      const redisWarnings = app.logRecords().filter((r) => r.context === 'Redis' && r.level === 'warn');
      expect(redisWarnings).toEqual([expect.objectContaining({ msg: expect.stringContaining('using the memory cache') })]);
      expect(redisWarnings[0].redis).toBe(`redis://:***@127.0.0.1:${noRedis}`);
      expect([...app.stdout, ...app.stderr].join('\n')).not.toContain('Redis-Secret-77');
      expect(await (await app.fetch('/api/cache/stats')).json()).toMatchObject({ backend: 'memory' });
    } finally {
      await app?.stop();
      taken.release();
    }
  }, 180_000);

  it('passes SIGTERM sent to `npm start` on to the service, which stops instead of staying behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'th-npm-start-'));
    const port = await freePort();
    // Empty values count as unset and beat anything a developer's .env in the project says.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(port),
      MQTT_PORT: '0',
      DATA_DIR: join(dir, 'data'),
      DATABASE_URL: '',
      MQTT_URL: '',
      REDIS_URL: '',
      REDIS_CLUSTER_NODES: '',
      DEVICE_TOKENS: '',
      LOG_LEVEL: 'info',
    };
    const npm: ChildProcess = spawn('npm', ['start'], { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const app = new AppProcess(npm, port, {});
    let descendants: number[] = [];
    try {
      await app.waitForOutput(/telemetry-hub is ready/, 120_000);
      descendants = descendantsOf(npm.pid as number);
      // npm's own child must be the service itself (a shell in between would swallow the signal).
      const servicePid = childrenOf(npm.pid as number)[0];
      const argv = readFileSync(`/proc/${servicePid}/cmdline`, 'utf8').split('\0');
      expect(argv[0]).toMatch(/(^|\/)node$/);
      expect(argv).toContain('dist/main.js');
      npm.kill('SIGTERM');
      await app.exited;
      await waitFor(() => !alive(servicePid), 30_000, `the service (pid ${servicePid}) to exit after npm did`);
    } finally {
      // Whatever this test leaves behind would hold the output pipes open.
      for (const pid of descendants) if (alive(pid)) process.kill(pid, 'SIGKILL');
      if (app.running) npm.kill('SIGKILL');
    }
  }, 180_000);
});

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when there are none
  }
}

function descendantsOf(pid: number): number[] {
  return childrenOf(pid).flatMap((child) => [child, ...descendantsOf(child)]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
