// FanoutService across two instances over real Redis pub/sub (a redis-server
// of this file's own: channels are server-wide, so a shared server would mix
// in other files' samples). Each instance is only the Redis, metrics, event and
// fan-out pieces; its WebSocket clients are fakes that record the frames the
// real ClientConnection would put on the socket.
import type WebSocket from 'ws';
import { TelemetryMetrics } from '../../src/metrics/telemetry-metrics';
import { ClientConnection } from '../../src/realtime/client-connection';
import { FanoutService } from '../../src/realtime/fanout.service';
import { RedisModule } from '../../src/redis/redis.module';
import type { Sample } from '../../src/telemetry/sample';
import { TelemetryEvents } from '../../src/telemetry/telemetry-events';
import { type Component, startComponent } from '../support/component';
import { waitFor } from '../support/free-port';
import { PrivateRedis } from '../support/private-redis';
import { describeWithServers } from '../support/servers';

interface SampleFrame {
  event: string;
  data: { deviceId: string; ts: string; metrics: Record<string, number> };
}

/** A WebSocket client as FanoutService sees it: an open socket that records what is sent. */
class FakeClient {
  readonly frames: SampleFrame[] = [];
  readonly connection: ClientConnection;

  constructor(metrics: TelemetryMetrics) {
    const socket = {
      OPEN: 1,
      readyState: 1,
      bufferedAmount: 0,
      send: (text: string) => this.frames.push(JSON.parse(text) as SampleFrame),
    };
    this.connection = new ClientConnection(socket as unknown as WebSocket, '127.0.0.1', metrics);
  }

  of(deviceId: string): SampleFrame[] {
    return this.frames.filter((f) => f.data.deviceId === deviceId);
  }
}

describeWithServers(['redis'])('FanoutService across two instances (component, private redis-server)', () => {
  const run = Math.random().toString(36).slice(2, 8);
  const id = (name: string) => `${run}-${name}`;
  let server: PrivateRedis;
  let a: Component;
  let b: Component;
  const clients: Array<[FanoutService, FakeClient]> = [];
  let ts = Date.now() - 3_600_000;

  const start = (name: string) =>
    startComponent({ env: { REDIS_URL: server.url, INSTANCE_ID: `${name}-${run}` }, imports: [RedisModule], providers: [FanoutService] });

  /** A fake client connected to an instance, subscribed to `deviceIds`. */
  function connect(instance: Component, ...deviceIds: string[]): FakeClient {
    const fanout = instance.get(FanoutService);
    const client = new FakeClient(instance.get(TelemetryMetrics));
    fanout.addClient(client.connection);
    for (const deviceId of deviceIds) fanout.subscribe(client.connection, deviceId);
    clients.push([fanout, client]);
    return client;
  }

  /** What the ingest path does after a commit on that instance. */
  const commit = (instance: Component, samples: Sample[]) => instance.get(TelemetryEvents).emit('batch.committed', { samples, devices: [] });

  /** Commits one point of `deviceId` on `instance` and waits for `client` to get it: every earlier batch has arrived too. */
  async function barrier(instance: Component, client: FakeClient, deviceId: string): Promise<void> {
    const at = ++ts;
    commit(instance, [{ deviceId, metric: 'marker', ts: at, value: at }]);
    await waitFor(() => client.of(deviceId).some((f) => f.data.metrics.marker === at), 5000, `the marker of ${deviceId}`);
  }

  beforeAll(async () => {
    server = await PrivateRedis.start();
    a = await start('fanout-a');
    b = await start('fanout-b');
    // Both subscriptions ready: batches from A reach a client on B.
    const warm = connect(b, id('warm'));
    let i = 0;
    const pump = setInterval(() => commit(a, [{ deviceId: id('warm'), metric: 'w', ts: ts + ++i, value: i }]), 50);
    try {
      await waitFor(() => warm.frames.length > 0, 10_000, 'A and B connected through Redis');
    } finally {
      clearInterval(pump);
      ts += i;
    }
  });

  afterAll(async () => {
    for (const [fanout, client] of clients) fanout.removeClient(client.connection);
    await b?.close();
    await a?.close();
    await server?.destroy();
  });

  it('a batch committed on A reaches a client on B, one frame per device and time, for its subscribed device only', async () => {
    const [x, y] = [id('x'), id('y')];
    const onB = connect(b, x);
    const [t1, t2] = [++ts, ++ts];
    commit(a, [
      { deviceId: x, metric: 'temperature', ts: t1, value: 21.5 },
      { deviceId: x, metric: 'humidity', ts: t1, value: 40 },
      { deviceId: y, metric: 'temperature', ts: t1, value: 99 },
      { deviceId: x, metric: 'temperature', ts: t2, value: 22 },
    ]);
    await barrier(a, onB, x);
    expect(onB.of(x).filter((f) => f.data.metrics.marker === undefined)).toEqual([
      { event: 'sample', data: { deviceId: x, ts: new Date(t1).toISOString(), metrics: { temperature: 21.5, humidity: 40 } } },
      { event: 'sample', data: { deviceId: x, ts: new Date(t2).toISOString(), metrics: { temperature: 22 } } },
    ]);
    expect(onB.of(y)).toEqual([]);
  });

  it("a '*' client gets every device's samples, once each even when also subscribed to the device; a local client gets them once", async () => {
    const [x, y] = [id('star-x'), id('star-y')];
    const everything = connect(b, '*');
    const both = connect(b, x, '*');
    const local = connect(a, x);
    const t = ++ts;
    commit(a, [
      { deviceId: x, metric: 'v', ts: t, value: 1 },
      { deviceId: y, metric: 'v', ts: t, value: 2 },
    ]);
    await barrier(a, both, x);
    await barrier(a, everything, y);
    // A's own message comes back to A's subscriber too; give it time to show up if it were delivered.
    await barrier(b, local, x);
    for (const client of [everything, both]) {
      expect(client.of(x).filter((f) => f.data.ts === new Date(t).toISOString())).toHaveLength(1);
      expect(client.of(y).filter((f) => f.data.ts === new Date(t).toISOString())).toHaveLength(1);
    }
    expect(local.of(x).filter((f) => f.data.ts === new Date(t).toISOString())).toHaveLength(1);
    expect(local.of(y)).toEqual([]);
  });

  it('after unsubscribe a client gets no more samples of that device, and still gets the others', async () => {
    const [x, z] = [id('unsub-x'), id('unsub-z')];
    const fanout = b.get(FanoutService);
    const client = connect(b, x, z);
    await barrier(a, client, x);
    fanout.unsubscribe(client.connection, x);
    const countBefore = client.of(x).length;
    commit(a, [{ deviceId: x, metric: 'v', ts: ++ts, value: 1 }]);
    await barrier(a, client, z);
    expect(client.of(x)).toHaveLength(countBefore);
    expect(client.connection.subscriptions.has(x)).toBe(false);
  });

  it('a removed client gets nothing more', async () => {
    const x = id('removed');
    const fanout = b.get(FanoutService);
    const gone = connect(b, x);
    const stays = connect(b, x);
    await barrier(a, gone, x);
    fanout.removeClient(gone.connection);
    const countBefore = gone.frames.length;
    await barrier(a, stays, x);
    expect(gone.frames).toHaveLength(countBefore);
  });

  it('an instance on another database of the same server is another deployment: it hears nothing of A and B', async () => {
    // Redis pub/sub ignores database numbers; the channel name carries it instead.
    const other = await startComponent({
      env: { REDIS_URL: `${server.url}/1`, INSTANCE_ID: `fanout-other-${run}` },
      imports: [RedisModule],
      providers: [FanoutService],
    });
    try {
      const x = id('other-db');
      const onOther = connect(other, x);
      const onB = connect(b, x);
      await barrier(a, onB, x);
      // B got A's batch through Redis; had the instance on database 1 shared the channel, it would have it by now too.
      await barrier(a, onB, x);
      expect(onOther.frames).toHaveLength(0);
    } finally {
      await other.close();
    }
  });
});
