// What the benchmark and the soak share: finding a free port, waiting,
// stopping child processes, and a private Mosquitto with the project's
// broker settings (so neither disturbs, nor is disturbed by, the shared one).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ROOT = join(__dirname, '..', '..');

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Progress goes to stderr; stdout carries only the JSON result. */
export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** Polls `check` (a throw counts as not yet) until it holds or `timeoutMs` passes. */
export async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** SIGTERM, then SIGKILL after 10 s; nothing for a process that already ended. */
export async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
  });
}

export const accepting = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

/** A Mosquitto of its own on a free port, with mosquitto/mosquitto.conf's limits and a throw-away persistence directory. */
export async function startMosquitto(label: string): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `th-${label}-mosquitto-`));
  const port = await freePort();
  const base = await readFile(join(ROOT, 'mosquitto', 'mosquitto.conf'), 'utf8');
  const config = base
    .replace(/^listener .*$/m, `listener ${port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`)
    .concat(process.getuid?.() === 0 ? '\nuser root\n' : '\n');
  await writeFile(join(dir, 'mosquitto.conf'), config);
  const child = spawn('mosquitto', ['-c', join(dir, 'mosquitto.conf')], { stdio: 'ignore' });
  await waitUntil(() => accepting(port), 10_000, 'mosquitto');
  return {
    url: `mqtt://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
}
