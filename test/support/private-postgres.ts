// A PostgreSQL 15 cluster of the test's own (initdb + pg_ctl in a temp dir, a
// free port on 127.0.0.1, trust auth), so a fault test may stop and start it
// without touching the shared PostgreSQL on :5432. initdb refuses to run as
// root, so as root every pg command runs as the `postgres` OS user (runuser)
// and the temp dir is handed to that user. Only this cluster's postmaster is
// ever signalled (pg_ctl -D <its dir>, or its pid from postmaster.pid).
//
//   const pg = await PrivatePostgres.start();   // initdb + start
//   pg.url                                       // postgres://postgres@127.0.0.1:N/postgres
//   await pg.query('SELECT 1');                  // a client that reconnects after a restart
//   await pg.stop();                             // pg_ctl stop -m fast (default)
//   await pg.start();                            // same port, same data
//   await pg.destroy();                          // stop -m immediate, remove the temp dir
import { execFile } from 'node:child_process';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort } from './free-port';

export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const RUN_AS = 'postgres';

const isRoot = (): boolean => process.getuid?.() === 0;

/** Runs a PostgreSQL binary (as the `postgres` user when we are root); rejects with its output. */
function runPg(binary: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const file = isRoot() ? 'runuser' : join(PG_BIN, binary);
  const argv = isRoot() ? ['-u', RUN_AS, '--', join(PG_BIN, binary), ...args] : args;
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024, cwd: tmpdir() }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${binary} ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve(`${stdout}${stderr}`);
    });
  });
}

function idOf(flag: '-u' | '-g'): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('id', [flag, RUN_AS], (error, stdout) => (error ? reject(error) : resolve(Number(stdout.trim()))));
  });
}

const clusters = new Set<PrivatePostgres>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A test that crashed or timed out must not leave a postmaster behind (pg_ctl daemonises it).
  process.once('exit', () => {
    for (const cluster of clusters) cluster.killSync();
  });
}

export class PrivatePostgres {
  private client: Client | undefined;
  private running = false;

  private constructor(
    readonly port: number,
    /** The temp dir: data/, the socket and server.log live here. */
    readonly dir: string,
  ) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  get logFile(): string {
    return join(this.dir, 'server.log');
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** initdb in a fresh temp dir, then start on a free port. */
  static async start(): Promise<PrivatePostgres> {
    installExitHook();
    const dir = await mkdtemp(join(tmpdir(), 'th-postgres-'));
    if (isRoot()) await chown(dir, await idOf('-u'), await idOf('-g'));
    const cluster = new PrivatePostgres(await freePort(), dir);
    clusters.add(cluster);
    try {
      await runPg('initdb', ['-D', cluster.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions']);
      await cluster.start();
    } catch (error) {
      await cluster.destroy().catch(() => undefined);
      throw error;
    }
    return cluster;
  }

  /** pg_ctl start on the same port and data (waits until it accepts connections). */
  async start(): Promise<void> {
    const options = [
      `-p ${this.port}`,
      '-c listen_addresses=127.0.0.1',
      `-c unix_socket_directories=${this.dir}`,
      // A throw-away cluster: no need to wait for the disk. Stops here are clean
      // (fast/immediate shutdowns of the server, not of the machine), so nothing committed is lost.
      '-c fsync=off',
      '-c max_connections=50',
    ].join(' ');
    await runPg('pg_ctl', ['-D', this.dataDir, '-l', this.logFile, '-w', '-t', '30', '-o', options, 'start']);
    this.running = true;
  }

  /**
   * pg_ctl stop: `fast` (default) rolls back open transactions and disconnects
   * every client, as an operator's restart does; `immediate` is a crash-like stop.
   */
  async stop(mode: 'smart' | 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.closeClient();
    if (!this.running) return;
    await runPg('pg_ctl', ['-D', this.dataDir, '-w', '-t', '30', '-m', mode, 'stop']);
    this.running = false;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** A query on the cluster's `postgres` database through a client that is replaced after a stop or error. */
  async query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]> {
    if (!this.client) {
      const client = new Client({ connectionString: this.url, application_name: 'th-test' });
      client.on('error', () => {
        if (this.client === client) this.client = undefined;
      });
      await client.connect();
      this.client = client;
    }
    try {
      return (await this.client.query(sql, params)).rows as T[];
    } catch (error) {
      // A broken connection is not reused; SQL errors keep it.
      if (!(error as { code?: string }).code) await this.closeClient();
      throw error;
    }
  }

  /** The last lines of the server log, for failure messages. */
  async logTail(lines = 30): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.split('\n').slice(-lines).join('\n');
  }

  /** Stops the server (immediate) and removes the temp dir. Safe to call twice. */
  async destroy(): Promise<void> {
    await this.closeClient();
    if (this.running) {
      await runPg('pg_ctl', ['-D', this.dataDir, '-w', '-t', '30', '-m', 'immediate', 'stop']).catch(() => this.killSync());
      this.running = false;
    }
    clusters.delete(this);
    await rm(this.dir, { recursive: true, force: true });
  }

  /** SIGQUIT (immediate shutdown) to this cluster's postmaster, by the pid in its postmaster.pid. */
  killSync(): void {
    try {
      const pid = Number(readFileSync(join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, 'SIGQUIT');
    } catch {
      // not running
    }
  }

  private async closeClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
