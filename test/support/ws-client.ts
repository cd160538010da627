// A small promise-based WebSocket client for tests of the /ws endpoint
// (docs/api.md WebSocket): every frame the server sends is parsed and kept in `frames`
// in arrival order; next() awaits the first not-yet-taken frame matching a
// predicate, so answers can be consumed in order while samples interleave.
//
//   const c = await WsTestClient.connect(`${baseUrl.replace('http', 'ws')}/ws`);
//   c.send('subscribe', { deviceId: 'dev-1' });
//   const answer = await c.next((f) => f.event === 'subscribed');
//   await c.close();
import { holdLock } from './cross-process-lock';
import WebSocket from 'ws';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Json = any;

export interface Frame {
  event: string;
  data: Json;
  /** Date.now() when the frame arrived (sub-millisecond: performance-based). */
  receivedAt: number;
}

export type FramePredicate = (frame: Frame) => boolean;

/** The handshake was refused with an HTTP answer (e.g. 401 for a bad WS_TOKEN). */
export class HandshakeRefused extends Error {
  constructor(readonly statusCode: number) {
    super(`WebSocket handshake refused with HTTP ${statusCode}`);
    this.name = 'HandshakeRefused';
  }
}

interface Waiter {
  predicate: FramePredicate;
  resolve: (frame: Frame) => void;
}

const UNASKED = new Set(['sample', 'status', 'alarm']);

export const now = (): number => performance.timeOrigin + performance.now();

export class WsTestClient {
  /** Every frame received, in order (taken or not). */
  readonly frames: Frame[] = [];
  /** Frames that were not valid JSON {event, data} (should stay empty). */
  readonly garbage: string[] = [];
  closeCode: number | undefined;
  closeReason: string | undefined;
  /** Resolves with the close code once the connection is closed (never rejects). */
  readonly closed: Promise<number>;
  private readonly taken = new WeakSet<Frame>();
  private waiters: Waiter[] = [];
  /** Index before which every frame is taken (speeds up scans of long runs). */
  private firstUntaken = 0;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve(code);
      });
    });
    ws.on('error', () => undefined); // surfaced through connect() or the close code
    ws.on('message', (data: WebSocket.RawData) => this.onMessage(data));
  }

  /** Opens a connection; rejects with HandshakeRefused on an HTTP answer, or the socket error. */
  static connect(url: string, timeoutMs = 5000): Promise<WsTestClient> {
    const ws = new WebSocket(url);
    const client = new WsTestClient(ws);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`WebSocket ${url} did not open within ${timeoutMs} ms`));
      }, timeoutMs);
      ws.once('open', () => {
        clearTimeout(timer);
        resolve(client);
      });
      ws.once('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        res.resume();
        ws.terminate();
        reject(new HandshakeRefused(res.statusCode ?? 0));
      });
      ws.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(event: string, data: unknown = {}): void {
    this.ws.send(JSON.stringify({ event, data }));
  }

  sendRaw(text: string | Buffer): void {
    this.ws.send(text);
  }

  /** Resolves with the first frame not yet taken that matches, and marks it taken. */
  next(predicate: FramePredicate = () => true, timeoutMs = 5000, what = 'a matching frame'): Promise<Frame> {
    const found = this.take(predicate);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        predicate,
        resolve: (frame) => {
          clearTimeout(timer);
          resolve(frame);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        const recent = this.frames.slice(-5).map((f) => JSON.stringify({ event: f.event, data: f.data }).slice(0, 200));
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; closeCode=${this.closeCode}; last frames: ${recent.join(' | ')}`));
      }, timeoutMs);
      timer.unref();
      this.waiters.push(waiter);
    });
  }

  /** next() for a frame with this event (and optional data predicate). */
  nextEvent(event: string, dataPredicate: (data: Json) => boolean = () => true, timeoutMs = 5000): Promise<Frame> {
    return this.next((f) => f.event === event && dataPredicate(f.data), timeoutMs, `event "${event}"`);
  }

  /** Sends a request and awaits the next frame that is not a pushed sample. */
  async request(event: string, data: unknown = {}, timeoutMs = 5000): Promise<Frame> {
    this.send(event, data);
    // sample, status and alarm frames come unasked (docs/api.md WebSocket) and may arrive before the answer.
    return this.next((f) => !UNASKED.has(f.event), timeoutMs, `the answer to "${event}"`);
  }

  /** Frames received with this event (taken or not). */
  all(event: string): Frame[] {
    return this.frames.filter((f) => f.event === event);
  }

  /** Resolves once the connection is closed, or rejects after timeoutMs. */
  async waitClosed(timeoutMs = 5000): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.closed,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`connection not closed within ${timeoutMs} ms`)), timeoutMs);
          timer.unref();
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes normally and waits for the close handshake (terminates if it takes long). */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
      await this.closed;
      return;
    }
    this.ws.close(1000);
    const timer = setTimeout(() => this.ws.terminate(), 2000);
    await this.closed;
    clearTimeout(timer);
  }

  /** Stops reading from the TCP socket (the server's send queue then grows). */
  pauseReading(): void {
    (this.ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
  }

  resumeReading(): void {
    (this.ws as unknown as { _socket: import('node:net').Socket })._socket.resume();
  }

  private onMessage(data: WebSocket.RawData): void {
    const text = data.toString();
    let parsed: Json;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.garbage.push(text);
      return;
    }
    if (!parsed || typeof parsed !== 'object' || typeof parsed.event !== 'string') {
      this.garbage.push(text);
      return;
    }
    const frame: Frame = { event: parsed.event, data: parsed.data, receivedAt: now() };
    this.frames.push(frame);
    const index = this.waiters.findIndex((w) => w.predicate(frame));
    if (index >= 0) {
      const [waiter] = this.waiters.splice(index, 1);
      this.taken.add(frame);
      waiter.resolve(frame);
    }
  }

  private take(predicate: FramePredicate): Frame | undefined {
    while (this.firstUntaken < this.frames.length && this.taken.has(this.frames[this.firstUntaken])) this.firstUntaken++;
    for (let i = this.firstUntaken; i < this.frames.length; i++) {
      const frame = this.frames[i];
      if (!this.taken.has(frame) && predicate(frame)) {
        this.taken.add(frame);
        return frame;
      }
    }
    return undefined;
  }
}

// ---- exclusive use of a shared Redis database ---------------------------------

/**
 * Test files that FLUSHDB or count keys on one database of the shared Redis
 * take turns on it (also across checkouts running at once). Returns the release function.
 */
export function lockSharedRedisDb(db: number, timeoutMs = 10 * 60_000): Promise<() => Promise<void>> {
  return holdLock(`redis-db${db}`, timeoutMs);
}
