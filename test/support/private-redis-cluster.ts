// A real 3-master Redis Cluster of the test's own (no replicas, no
// persistence) on free ports of 127.0.0.1, so a test may SIGKILL one master
// without touching the shared Redis on :6379. Only the redis-server processes
// this class spawned are ever signalled (by pid); the temp dir holds each
// node's nodes-P.conf and log.
//
//   const cluster = await PrivateRedisCluster.start();   // 3 masters, cluster_state:ok
//   cluster.nodesEnv                                      // '127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3' (REDIS_CLUSTER_NODES)
//   const client = await cluster.connect();               // an ioredis Cluster client for checks
//   await cluster.kill(cluster.ports[1]);                 // SIGKILL one master
//   await cluster.restart(cluster.ports[1]);              // same port and nodes.conf: rejoins, cluster_state:ok
//   await cluster.destroy();                              // SIGKILL the rest, remove the temp dir
//
// The cluster bus port of each node is chosen free as well (`--cluster-port`):
// the default, port + 10000, may lie beyond 65535 for an ephemeral port.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster, type ClusterOptions } from 'ioredis';
import { reapOnExit } from './child-reaper';
import { freePort, waitFor } from './free-port';

const HOST = '127.0.0.1';

export interface ClusterStartOptions {
  /** `cluster-node-timeout` in ms: how long until a dead master marks the cluster down (default 2000). */
  nodeTimeoutMs?: number;
}

interface Node {
  port: number;
  busPort: number;
  process: ChildProcess | undefined;
}

/** Runs redis-cli; resolves with its stdout, rejects with its output. */
export function redisCli(args: string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`redis-cli ${args.join(' ')} failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Six distinct free ports (three nodes, three cluster buses). */
async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

export class PrivateRedisCluster {
  private constructor(
    private readonly nodes: Node[],
    /** The temp dir: nodes-P.conf and redis-P.log of every node. */
    readonly dir: string,
    private readonly nodeTimeoutMs: number,
  ) {}

  /** The client ports of the three masters. */
  get ports(): number[] {
    return this.nodes.map((n) => n.port);
  }

  /** REDIS_CLUSTER_NODES: 'host:port,host:port,host:port'. */
  get nodesEnv(): string {
    return this.nodes.map((n) => `${HOST}:${n.port}`).join(',');
  }

  /** ioredis startup nodes. */
  get startupNodes(): Array<{ host: string; port: number }> {
    return this.nodes.map((n) => ({ host: HOST, port: n.port }));
  }

  pidOf(port: number): number | undefined {
    return this.node(port).process?.pid;
  }

  isRunning(port: number): boolean {
    const child = this.node(port).process;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  static async start(options: ClusterStartOptions = {}): Promise<PrivateRedisCluster> {
    const dir = await mkdtemp(join(tmpdir(), 'th-redis-cluster-'));
    const ports = await distinctFreePorts(6);
    const nodes: Node[] = [0, 1, 2].map((i) => ({ port: ports[i], busPort: ports[i + 3], process: undefined }));
    const cluster = new PrivateRedisCluster(nodes, dir, options.nodeTimeoutMs ?? 2000);
    try {
      for (const node of nodes) cluster.spawnNode(node);
      await Promise.all(nodes.map((n) => waitFor(() => cluster.answersPing(n.port), 10_000, `redis-server on ${n.port}`)));
      await redisCli(['--cluster', 'create', ...nodes.map((n) => `${HOST}:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], 30_000);
      // Every node (not just the first) must agree before a client relies on it.
      await waitFor(
        async () => (await Promise.all(nodes.map((n) => cluster.clusterState(n.port)))).every((state) => state === 'ok'),
        20_000,
        'cluster_state:ok on every node',
      );
    } catch (error) {
      await cluster.destroy().catch(() => undefined);
      throw error;
    }
    return cluster;
  }

  /** `cluster_state` as a node reports it ('ok' | 'fail'), undefined when it does not answer. */
  async clusterState(port: number): Promise<string | undefined> {
    try {
      const info = await redisCli(['-h', HOST, '-p', String(port), 'cluster', 'info'], 2000);
      return /cluster_state:(\w+)/.exec(info)?.[1];
    } catch {
      return undefined;
    }
  }

  /** A cluster client for the test's own checks (quit it in afterAll). */
  async connect(options: ClusterOptions = {}): Promise<Cluster> {
    const client = new Cluster(this.startupNodes, {
      lazyConnect: true,
      slotsRefreshTimeout: 2000,
      clusterRetryStrategy: (attempt) => (attempt > 20 ? null : Math.min(attempt * 100, 1000)),
      ...options,
      redisOptions: { connectTimeout: 1000, maxRetriesPerRequest: 1, ...options.redisOptions },
    });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  /** Sends the signal to the master on `port` (one of ours) and waits for it to exit. */
  async kill(port: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const node = this.node(port);
    const child = node.process;
    node.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  /**
   * Starts the node on `port` again (after kill()) with its nodes-P.conf, so it
   * rejoins with its slots (empty: nothing persisted); resolves once every
   * node reports cluster_state:ok again.
   */
  async restart(port: number): Promise<void> {
    const node = this.node(port);
    if (this.isRunning(port)) await this.kill(port, 'SIGKILL');
    this.spawnNode(node);
    await waitFor(() => this.answersPing(port), 10_000, `redis-server on ${port}`);
    await waitFor(
      async () => (await Promise.all(this.nodes.map((n) => this.clusterState(n.port)))).every((state) => state === 'ok'),
      20_000,
      'cluster_state:ok on every node after the restart',
    );
  }

  /** SIGTERM to every node still running. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.kill(n.port, 'SIGTERM')));
  }

  /** SIGKILL to every node still running, then removes the temp dir. Safe to call twice. */
  async destroy(): Promise<void> {
    await Promise.all(this.nodes.map((n) => this.kill(n.port, 'SIGKILL')));
    await rm(this.dir, { recursive: true, force: true });
  }

  private node(port: number): Node {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`port ${port} is not a node of this cluster (${this.nodesEnv})`);
    return node;
  }

  private spawnNode(node: Node): void {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(node.port),
        '--bind',
        HOST,
        '--cluster-enabled',
        'yes',
        '--cluster-port',
        String(node.busPort),
        '--cluster-config-file',
        join(this.dir, `nodes-${node.port}.conf`),
        '--cluster-node-timeout',
        String(this.nodeTimeoutMs),
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
        '--logfile',
        join(this.dir, `redis-${node.port}.log`),
      ],
      { stdio: 'ignore' },
    );
    reapOnExit(child);
    node.process = child;
  }

  private async answersPing(port: number): Promise<boolean> {
    try {
      return (await redisCli(['-h', HOST, '-p', String(port), 'ping'], 1000)).trim() === 'PONG';
    } catch {
      return false;
    }
  }
}
