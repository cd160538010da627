// A redis-server of the test's own on a free port (no persistence), so a fault
// test may SIGKILL, SIGSTOP/SIGCONT or restart it without touching the shared
// Redis on :6379. Only the process this class spawned is ever signalled (by pid).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapOnExit } from './child-reaper';
import { freePort, waitFor } from './free-port';

function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(500, () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.once('error', () => done(false));
  });
}

export class PrivateRedis {
  private process: ChildProcess | undefined;
  private paused = false;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  static async start(): Promise<PrivateRedis> {
    const dir = await mkdtemp(join(tmpdir(), 'th-redis-'));
    const redis = new PrivateRedis(await freePort(), dir);
    await redis.restart();
    return redis;
  }

  /** Starts redis-server on the same port (empty: nothing persisted); stops a running one first. */
  async restart(): Promise<void> {
    if (this.process) await this.kill('SIGKILL');
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--logfile', join(this.dir, 'redis.log')],
      { stdio: 'ignore' },
    );
    reapOnExit(child);
    this.process = child;
    this.paused = false;
    await waitFor(() => answersPing(this.port), 10000, `redis-server on ${this.port}`);
  }

  /** Sends the signal to our redis-server and waits for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
      // A stopped process only acts on SIGTERM after SIGCONT (SIGKILL works regardless).
      if (this.paused && signal !== 'SIGKILL') child.kill('SIGCONT');
    });
    this.paused = false;
  }

  /** SIGSTOP: the server keeps its sockets open but answers nothing (a hung Redis). */
  pause(): void {
    if (!this.process) throw new Error('redis-server is not running');
    this.process.kill('SIGSTOP');
    this.paused = true;
  }

  /** SIGCONT after pause(). */
  resume(): void {
    if (!this.process) throw new Error('redis-server is not running');
    this.process.kill('SIGCONT');
    this.paused = false;
  }

  async destroy(): Promise<void> {
    await this.kill('SIGKILL');
    await rm(this.dir, { recursive: true, force: true });
  }
}
