// RedisConnection against a redis-server of this file's own, paused with
// SIGSTOP: a short stall (longer than the 80 ms command timeout, shorter
// than a second) moves the cache to memory but keeps every connection,
// while a silent link reopens them all. Each duplicate's reconnects are
// counted by its 'reconnecting' events.
import { RedisConnection } from '../../src/redis/redis-connection';
import { RedisModule } from '../../src/redis/redis.module';
import { type Component, startComponent } from '../support/component';
import { shareCpuAs } from '../support/cpu-share';
import { waitFor } from '../support/free-port';
import { PrivateRedis } from '../support/private-redis';
import { describeWithServers } from '../support/servers';

shareCpuAs('fault');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeWithServers(['redis'])('RedisConnection on a stalled server (component, private redis-server)', () => {
  let server: PrivateRedis;
  let component: Component;
  let redis: RedisConnection;
  let reconnects = 0;
  let copy: ReturnType<RedisConnection['duplicate']> | undefined;

  beforeAll(async () => {
    server = await PrivateRedis.start();
    component = await startComponent({ env: { REDIS_URL: server.url }, imports: [RedisModule] });
    redis = component.get(RedisConnection);
    await waitFor(() => redis.isUp, 5000, 'Redis up');
    copy = redis.duplicate({ commandTimeout: 2000 });
    copy.on('error', () => undefined);
    copy.on('reconnecting', () => reconnects++);
    await copy.connect();
  });

  afterAll(async () => {
    server?.resume();
    copy?.disconnect();
    await component?.close();
    await server?.destroy();
  });

  it('a stall of 400 ms marks Redis down and up again, without reopening the other connections', async () => {
    server.pause();
    await waitFor(() => !redis.isUp, 2000, 'Redis marked down');
    await sleep(400);
    server.resume();
    await waitFor(() => redis.isUp, 5000, 'Redis up again');
    await sleep(1000);
    expect(reconnects).toBe(0);
  });

  it('a silent link for 3 s reopens every connection, and Redis comes back by itself', async () => {
    server.pause();
    await sleep(3000);
    server.resume();
    await waitFor(() => redis.isUp, 10_000, 'Redis up again');
    expect(reconnects).toBeGreaterThanOrEqual(1);
  });
});
