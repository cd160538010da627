// The fault proxy itself, against an echo server in this process.
import { type Server, type Socket, createServer, connect } from 'node:net';
import { FaultProxy } from './fault-proxy';

let echo: Server;
let echoPort: number;
const serverSockets = new Set<Socket>();
let proxy: FaultProxy;
const clients: Socket[] = [];

beforeAll(async () => {
  echo = createServer((s) => {
    serverSockets.add(s);
    s.on('close', () => serverSockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoPort = (echo.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of serverSockets) s.destroy();
  await new Promise<void>((resolve) => echo.close(() => resolve()));
});

beforeEach(async () => {
  proxy = await FaultProxy.start({ host: '127.0.0.1', port: echoPort });
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  await proxy.close();
});

interface Client {
  socket: Socket;
  received: () => string;
  ended: Promise<{ error: NodeJS.ErrnoException | undefined }>;
}

async function open(): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port: proxy.port });
  clients.push(socket);
  let data = '';
  let error: NodeJS.ErrnoException | undefined;
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (data += chunk));
  socket.on('error', (e) => (error = e));
  const ended = new Promise<{ error: NodeJS.ErrnoException | undefined }>((resolve) => socket.on('close', () => resolve({ error })));
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  return { socket, received: () => data, ended };
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('FaultProxy', () => {
  it('passes bytes both ways and rewrites URLs to itself', async () => {
    const c = await open();
    c.socket.write('hello');
    await until(() => c.received() === 'hello', 'echo');
    expect(proxy.bytes).toEqual({ up: 5, down: 5 });
    expect(proxy.rewrite('postgres://u:p@db.example:5432/x?sslmode=disable')).toBe(`postgres://u:p@127.0.0.1:${proxy.port}/x?sslmode=disable`);
  });

  it('delays every chunk by at least the delay in each direction and keeps their order', async () => {
    const c = await open();
    proxy.delay(150);
    const started = Date.now();
    const parts = Array.from({ length: 50 }, (_, i) => `<${i}>`);
    for (const p of parts) c.socket.write(p);
    await until(() => c.received().length === parts.join('').length, 'all chunks');
    // Up 150 ms, back 150 ms: a round trip can never be shorter than 300 ms.
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(c.received()).toBe(parts.join(''));

    // Back to pass: chunks still queued are not overtaken by new ones.
    c.socket.write('A');
    proxy.pass();
    c.socket.write('B');
    await until(() => c.received().endsWith('AB') || c.received().endsWith('BA'), 'A and B');
    expect(c.received().endsWith('AB')).toBe(true);
  });

  it('blackhole: open and new connections stay open and silent, and stay so after pass(); newer ones work', async () => {
    const before = await open();
    proxy.blackhole();
    before.socket.write('lost');
    const during = await open(); // accepted, like a SYN answered by a route that then drops
    during.socket.write('lost too');
    let closed = false;
    void before.ended.then(() => (closed = true));
    void during.ended.then(() => (closed = true));
    await sleep(400);
    expect(before.received()).toBe('');
    expect(during.received()).toBe('');
    expect(closed).toBe(false);
    expect(proxy.openConnections).toBe(2);

    proxy.pass();
    before.socket.write('still lost');
    const after = await open();
    after.socket.write('back');
    await until(() => after.received() === 'back', 'echo after pass');
    expect(before.received()).toBe('');
    expect(during.received()).toBe('');
    expect(closed).toBe(false);
  });

  it('reset: open connections get an RST (ECONNRESET), not a FIN', async () => {
    const c = await open();
    c.socket.write('x');
    await until(() => c.received() === 'x', 'echo');
    proxy.reset();
    const { error } = await c.ended;
    expect(error?.code).toBe('ECONNRESET');
    expect(proxy.counts.reset).toBe(1);
    // Without a period, the next connection passes.
    const next = await open();
    next.socket.write('y');
    await until(() => next.received() === 'y', 'echo after reset');
  });

  it('reset for a period: every connection opened meanwhile is reset, then the proxy passes again', async () => {
    proxy.reset(300);
    expect(proxy.mode).toBe('reset');
    // The connect may or may not complete before the RST arrives; either way it ends in ECONNRESET.
    const socket = connect({ host: '127.0.0.1', port: proxy.port });
    clients.push(socket);
    const code = await new Promise<string | undefined>((resolve) => {
      let seen: string | undefined;
      socket.on('error', (e: NodeJS.ErrnoException) => (seen = e.code));
      socket.on('close', () => resolve(seen));
    });
    expect(code).toBe('ECONNRESET');
    await sleep(350);
    const after = await open();
    after.socket.write('z');
    await until(() => after.received() === 'z', 'echo after the reset period');
    expect(proxy.mode).toBe('pass');
  });
});
