// A Mosquitto of the test's own on a free port, using the project's broker
// config (persistence, unlimited in-flight/queue), so a test may stop,
// restart or kill it without touching the shared broker.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './free-port';
import { connect } from 'node:net';

const PROJECT_CONFIG = join(__dirname, '..', '..', 'mosquitto', 'mosquitto.conf');

function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export class PrivateMosquitto {
  private process: ChildProcess | undefined;

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly configPath: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateMosquitto> {
    const dir = await mkdtemp(join(tmpdir(), 'th-mosquitto-'));
    const port = await freePort();
    const base = await readFile(PROJECT_CONFIG, 'utf8');
    const config = base
      .replace(/^listener .*$/m, `listener ${port} 127.0.0.1`)
      .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`)
      .concat(`\nlog_dest file ${dir}/mosquitto.log\n`)
      // As root mosquitto would drop to user 'mosquitto', which cannot write the temp dir.
      .concat(process.getuid?.() === 0 ? 'user root\n' : '');
    const configPath = join(dir, 'mosquitto.conf');
    await writeFile(configPath, config);
    const broker = new PrivateMosquitto(port, dir, configPath);
    await broker.restart();
    return broker;
  }

  async restart(): Promise<void> {
    if (this.process) await this.stop();
    this.process = spawn('mosquitto', ['-c', this.configPath], { stdio: 'ignore' });
    await waitFor(() => accepting(this.port), 10000, `mosquitto on ${this.port}`);
  }

  /** SIGTERM lets mosquitto save its persistence file, as a normal restart would. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  async destroy(): Promise<void> {
    await this.stop('SIGKILL');
    await rm(this.dir, { recursive: true, force: true });
  }
}
