// Runs the BUILT service (`node dist/main.js`) as a child process, configured
// only through its environment like an operator would, so fault tests can
// SIGKILL / SIGTERM / SIGSTOP a real process and start it again.
//
//   await buildService();                       // once, in beforeAll
//   const app = await startAppProcess({ DATABASE_URL, MQTT_URL, INSTANCE_ID: 'x' });
//   ... app.baseUrl, app.pid, app.stdout, await app.metrics() ...
//   const exit = await app.kill('SIGKILL');     // { code: null, signal: 'SIGKILL' }
//
// Every child still running when the test process exits is SIGKILLed (by pid).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { reapOnExit } from './child-reaper';
import { CONFIG_VARIABLES } from '../../src/config/load-config';
import { freePort } from './free-port';

export const PROJECT_ROOT = join(__dirname, '..', '..');
export const BUILT_ENTRY = join(PROJECT_ROOT, 'dist', 'main.js');

/** Every variable the service reads: never inherited from the test runner's environment. */
const SERVICE_VARIABLES = CONFIG_VARIABLES;

export type AppEnv = Record<string, string | undefined>;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** How long to wait for GET /health/live (default 30 s). */
  readyTimeoutMs?: number;
  /** Passed to the child as-is; defaults to dist/main.js. */
  entry?: string;
  /** Working directory (where the service looks for .env); defaults to an empty one, so a developer's .env never applies. */
  cwd?: string;
}

function emptyCwd(): string {
  return mkdtempSync(join(tmpdir(), 'th-app-cwd-'));
}

/** `npm run build` (tsc -b tsconfig.build.json: nothing to do when dist/ is current) in the project; rejects with the compiler output. */
export function buildService(): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('npm', ['run', '--silent', 'build'], { cwd: PROJECT_ROOT, env: childBaseEnv(), maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`npm run build failed: ${error.message}\n${stdout}\n${stderr}`));
      else if (!existsSync(BUILT_ENTRY)) reject(new Error(`npm run build did not produce ${BUILT_ENTRY}`));
      else resolve();
    });
  });
}

/** The runner's environment without service variables and without Jest's NODE_OPTIONS. */
function childBaseEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of SERVICE_VARIABLES) delete env[key];
  delete env.NODE_OPTIONS;
  return env;
}

/** Collects a stream's output as whole lines (a partial last line is kept until it ends). */
function collectLines(stream: NodeJS.ReadableStream | null, into: string[], onLine: () => void): void {
  if (!stream) return;
  let partial = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) if (line.length > 0) into.push(line);
    if (parts.length > 0) onLine();
  });
  stream.on('end', () => {
    if (partial.length > 0) into.push(partial);
    partial = '';
    onLine();
  });
}

export class AppProcess {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  private lineWaiters: Array<() => void> = [];

  constructor(
    private readonly child: ChildProcess,
    readonly port: number,
    /** The exact environment variables given to the service (the runner's env aside). */
    readonly env: Readonly<AppEnv>,
  ) {
    reapOnExit(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        this.notifyLines();
        resolve(this.exitInfo);
      });
    });
    const notify = () => this.notifyLines();
    collectLines(child.stdout, this.stdout, notify);
    collectLines(child.stderr, this.stderr, notify);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Undefined while the process runs. */
  get exit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** stdout lines that are JSON log records (pino), parsed. */
  logRecords(): Array<Record<string, unknown>> {
    const records: Array<Record<string, unknown>> = [];
    for (const line of this.stdout) {
      try {
        const value = JSON.parse(line) as unknown;
        if (value && typeof value === 'object') records.push(value as Record<string, unknown>);
      } catch {
        // not a JSON line
      }
    }
    return records;
  }

  /** Sends `signal` and resolves with how the process ended. Already exited: resolves at once. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitInfo> {
    if (this.exitInfo) return this.exitInfo;
    this.child.kill(signal);
    return this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. For afterAll. */
  async stop(graceMs = 15000): Promise<ExitInfo> {
    if (this.exitInfo) return this.exitInfo;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (!this.exitInfo) this.child.kill('SIGKILL');
    }, graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGSTOP / SIGCONT, for tests of a hung (not dead) process. */
  pause(): void {
    this.child.kill('SIGSTOP');
  }

  resume(): void {
    this.child.kill('SIGCONT');
  }

  async fetch(path: string, init?: RequestInit): Promise<Response> {
    return fetch(`${this.baseUrl}${path}`, init);
  }

  /** GET /metrics as Prometheus text. */
  async metrics(): Promise<string> {
    const res = await this.fetch('/metrics');
    if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}`);
    return res.text();
  }

  /** Resolves with the first output line (stdout or stderr) matching `pattern`. */
  async waitForOutput(pattern: RegExp, timeoutMs = 15000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = [...this.stdout, ...this.stderr].find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (this.exitInfo) throw new Error(`process exited (${describeExit(this.exitInfo)}) before printing ${pattern}\n${this.tail()}`);
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for output ${pattern}\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.lineWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The last lines of output, for error messages. */
  tail(lines = 30): string {
    return [...this.stdout.slice(-lines).map((l) => `stdout| ${l}`), ...this.stderr.slice(-lines).map((l) => `stderr| ${l}`)].join('\n');
  }

  private notifyLines(): void {
    const waiters = this.lineWaiters;
    this.lineWaiters = [];
    for (const wake of waiters) wake();
  }
}

function describeExit(info: ExitInfo): string {
  return info.signal ? `signal ${info.signal}` : `code ${info.code}`;
}

/**
 * Starts `node dist/main.js` with `env` (PORT from freePort() unless given;
 * LOG_LEVEL defaults to info) and resolves once GET /health/live answers 200.
 * Rejects, with the output, if the process exits or does not become live in time.
 * A key given as undefined is removed from the child's environment.
 */
export async function startAppProcess(env: AppEnv, options: StartOptions = {}): Promise<AppProcess> {
  const entry = options.entry ?? BUILT_ENTRY;
  if (!existsSync(entry)) throw new Error(`${entry} does not exist: run buildService() first`);
  const port = env.PORT !== undefined ? Number(env.PORT) : await freePort();
  const serviceEnv: AppEnv = { LOG_LEVEL: 'info', ...env, PORT: String(port) };
  const childEnv = childBaseEnv();
  for (const [key, value] of Object.entries(serviceEnv)) {
    if (value === undefined) delete childEnv[key];
    else childEnv[key] = value;
  }
  const child = spawn(process.execPath, [entry], { cwd: options.cwd ?? emptyCwd(), env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const app = new AppProcess(child, port, serviceEnv);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', reject);
  });

  const timeoutMs = options.readyTimeoutMs ?? 30000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (app.exit) {
      throw new Error(`service exited during start-up (${describeExit(app.exit)})\n${app.tail()}`);
    }
    try {
      const res = await fetch(`${app.baseUrl}/health/live`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return app;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await app.kill('SIGKILL');
      throw new Error(`service did not answer GET /health/live within ${timeoutMs} ms\n${app.tail()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The value of one sample in Prometheus text, e.g.
 * metricValue(text, 'telemetry_messages_rejected_total', { reason: 'invalid_json' }).
 * Without labels the unlabelled sample is returned. Throws if it is absent.
 */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels);
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) have.set(pair[1], pair[2]);
    if (have.size !== wanted.length || !wanted.every(([k, v]) => have.get(k) === v)) continue;
    return Number(match[3]);
  }
  throw new Error(`metric ${name}${wanted.length ? JSON.stringify(labels) : ''} not found`);
}
