// A real HTTP receiver for webhook tests (node:http on a free port): records
// every request with its raw body and answers with whatever `respond` says
// (a status code, or 'hang' to never answer). Can stop and start again on
// the same port to play a receiver that is down for a while.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { freePort } from './free-port';

export interface ReceivedHook {
  headers: IncomingMessage['headers'];
  body: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  json: any;
  receivedAt: number;
}

export type Responder = (hook: ReceivedHook, nth: number) => number | 'hang';

export class WebhookReceiver {
  readonly received: ReceivedHook[] = [];
  respond: Responder = () => 200;
  private server: Server | undefined;
  private readonly hanging = new Set<ServerResponse>();

  private constructor(readonly port: number) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Listens at once unless `listening` is false (a receiver that is down). */
  static async create(listening = true): Promise<WebhookReceiver> {
    const receiver = new WebhookReceiver(await freePort());
    if (listening) await receiver.start();
    return receiver;
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        const hook: ReceivedHook = { headers: req.headers, body, json, receivedAt: Date.now() };
        this.received.push(hook);
        const answer = this.respond(hook, this.received.length);
        if (answer === 'hang') {
          this.hanging.add(res);
          return;
        }
        res.writeHead(answer, { 'content-type': 'text/plain' }).end('ok');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Hooks whose x-telemetry-event-id is `id`. */
  withEventId(id: string): ReceivedHook[] {
    return this.received.filter((h) => h.headers['x-telemetry-event-id'] === id);
  }
}
