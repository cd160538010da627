// A TCP proxy for network-fault tests: the service talks to PostgreSQL, Redis
// or the broker through it, and the test changes what the link does while
// traffic flows. Plain node:net in the test process, no server binary.
//
//   const proxy = await FaultProxy.start({ host: '127.0.0.1', port: 5432 });
//   const url = proxy.rewrite('postgres://postgres@127.0.0.1:5432/db');
//   proxy.delay(200);      // +200 ms each way, per chunk, order kept
//   proxy.blackhole();     // silence: nothing forwarded, nothing closed, no RST
//   proxy.pass();          // new connections work again
//   proxy.reset();         // RST every open connection (once)
//   proxy.reset(10_000);   // ...and every connection opened in the next 10 s
//   await proxy.close();
//
// A blackholed connection stays silent for good, even after pass(): that is
// what a link whose state was lost looks like (a NAT/conntrack entry or a load
// balancer flow that timed out), and the bytes dropped meanwhile could not be
// replayed anyway. Its owner must notice (timeouts, keepalive) and reconnect;
// that is what the scenarios test.
import { type AddressInfo, type Server, type Socket, createServer, connect } from 'node:net';

export type FaultMode = 'pass' | 'delay' | 'blackhole' | 'reset';

export interface ProxyTarget {
  host: string;
  port: number;
}

/** Chunks written to one side, in order, each not before its due time. */
class DelayedPipe {
  private readonly queue: Array<{ due: number; chunk: Buffer }> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly to: Socket) {}

  get pending(): boolean {
    return this.queue.length > 0;
  }

  push(chunk: Buffer, delayMs: number): void {
    const last = this.queue.length > 0 ? this.queue[this.queue.length - 1].due : 0;
    // Never earlier than the chunk before it: TCP is a byte stream.
    this.queue.push({ due: Math.max(Date.now() + delayMs, last), chunk });
    this.schedule();
  }

  clear(): void {
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = Date.now();
        while (this.queue.length > 0 && this.queue[0].due <= now) {
          const { chunk } = this.queue.shift() as { chunk: Buffer };
          if (!this.to.destroyed) this.to.write(chunk);
        }
        this.schedule();
      },
      Math.max(0, this.queue[0].due - Date.now()),
    );
  }
}

class ProxiedConnection {
  /** Blackholed once: silent until closed (see the file comment). */
  dead = false;
  private readonly toUpstream: DelayedPipe;
  private readonly toClient: DelayedPipe;

  constructor(
    readonly client: Socket,
    readonly upstream: Socket,
    private readonly proxy: FaultProxy,
    private readonly onClosed: (c: ProxiedConnection) => void,
  ) {
    this.toUpstream = new DelayedPipe(upstream);
    this.toClient = new DelayedPipe(client);
    client.on('data', (chunk: Buffer) => this.forward(chunk, this.upstream, this.toUpstream, 'up'));
    upstream.on('data', (chunk: Buffer) => this.forward(chunk, this.client, this.toClient, 'down'));
    // A clean close on one side is passed on (FIN), unless the link is silent.
    client.on('end', () => {
      if (!this.dead) upstream.end();
    });
    upstream.on('end', () => {
      if (!this.dead) client.end();
    });
    const closed = () => {
      if (this.dead) {
        // One side closed its end; the other must hear nothing of it.
        if (client.destroyed) {
          upstream.destroy();
          this.onClosed(this);
        }
        return;
      }
      client.destroy();
      upstream.destroy();
      this.toClient.clear();
      this.toUpstream.clear();
      this.onClosed(this);
    };
    client.on('error', () => undefined);
    upstream.on('error', () => undefined);
    client.on('close', closed);
    upstream.on('close', closed);
  }

  private forward(chunk: Buffer, to: Socket, pipe: DelayedPipe, direction: 'up' | 'down'): void {
    if (this.dead) return;
    this.proxy.bytes[direction] += chunk.length;
    const delayMs = this.proxy.delayMs;
    if (delayMs > 0 || pipe.pending) pipe.push(chunk, delayMs);
    else to.write(chunk);
  }

  blackhole(): void {
    this.dead = true;
    this.toClient.clear();
    this.toUpstream.clear();
    // The server learns nothing either (its keepalive or the client's
    // reconnect decides); the upstream socket is closed only once the client
    // gives up its end, so servers shared by tests are not left with it.
  }

  reset(): void {
    this.toClient.clear();
    this.toUpstream.clear();
    this.client.resetAndDestroy();
    if (!this.upstream.destroyed) this.upstream.resetAndDestroy();
  }
}

export class FaultProxy {
  private modeValue: FaultMode = 'pass';
  delayMs = 0;
  private resetUntil = 0;
  private readonly connections = new Set<ProxiedConnection>();
  /** Sockets accepted while blackholed: held open, never answered. */
  private readonly silent = new Set<Socket>();
  /** Bytes forwarded client → target (up) and target → client (down). */
  readonly bytes = { up: 0, down: 0 };
  /** Connections accepted, and connections reset by the proxy. */
  readonly counts = { accepted: 0, reset: 0 };

  private constructor(
    private readonly server: Server,
    readonly target: ProxyTarget,
  ) {}

  static async start(target: ProxyTarget): Promise<FaultProxy> {
    const server = createServer({ pauseOnConnect: false, noDelay: true });
    const proxy = new FaultProxy(server, target);
    server.on('connection', (socket) => proxy.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  /** Proxy in front of the host:port of `url` (postgres://, redis://, mqtt://). */
  static async forUrl(url: string): Promise<FaultProxy> {
    const parsed = new URL(url);
    return FaultProxy.start({ host: parsed.hostname, port: Number(parsed.port) });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get mode(): FaultMode {
    return this.modeValue;
  }

  /** Open proxied connections (blackholed ones included). */
  get openConnections(): number {
    return this.connections.size + this.silent.size;
  }

  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string {
    const parsed = new URL(url);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(this.port);
    return parsed.toString();
  }

  pass(): void {
    this.modeValue = 'pass';
    this.delayMs = 0;
    this.resetUntil = 0;
  }

  /** +`ms` in each direction for every chunk from now on (already queued chunks keep their time). */
  delay(ms: number): void {
    this.modeValue = 'delay';
    this.delayMs = ms;
    this.resetUntil = 0;
  }

  /** Every open connection and every new one goes silent; nothing is closed. */
  blackhole(): void {
    this.modeValue = 'blackhole';
    this.delayMs = 0;
    for (const c of this.connections) c.blackhole();
  }

  /**
   * Resets (RST) every open connection; with `forMs`, also every connection
   * accepted during the next `forMs` ms, after which the proxy passes again.
   */
  reset(forMs = 0): void {
    for (const c of [...this.connections]) {
      if (c.dead) continue;
      this.counts.reset++;
      c.reset();
    }
    if (forMs > 0) {
      this.modeValue = 'reset';
      this.delayMs = 0;
      this.resetUntil = Date.now() + forMs;
    }
  }

  async close(): Promise<void> {
    for (const c of this.connections) {
      c.client.destroy();
      c.upstream.destroy();
    }
    for (const s of this.silent) s.destroy();
    this.connections.clear();
    this.silent.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.counts.accepted++;
    client.setNoDelay(true);
    if (this.modeValue === 'reset' && Date.now() >= this.resetUntil) this.pass();
    if (this.modeValue === 'reset') {
      this.counts.reset++;
      client.on('error', () => undefined);
      client.resetAndDestroy();
      return;
    }
    if (this.modeValue === 'blackhole') {
      // Accepted (the SYN was answered) and then nothing, as behind a dropped route.
      this.silent.add(client);
      client.on('error', () => undefined);
      client.on('data', () => undefined);
      client.on('close', () => this.silent.delete(client));
      return;
    }
    client.pause();
    const upstream = connect({ host: this.target.host, port: this.target.port, noDelay: true });
    const connection = new ProxiedConnection(client, upstream, this, (c) => this.connections.delete(c));
    this.connections.add(connection);
    upstream.once('connect', () => client.resume());
  }
}
