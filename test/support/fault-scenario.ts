// The stage the ingestion fault tests share (fault-*, kill-redelivery,
// multi-instance): the BUILT service as child processes configured through
// their environment, a Mosquitto of the test's own, a PostgreSQL database
// (a throw-away one on the shared server, or a private cluster the test may
// stop), a windowed QoS 1 publisher, and at the end the exact checks of
// load-check.ts. Everything started here is stopped by destroy(), whatever
// step failed.
//
//   const stage = await FaultScenario.start({ label: 'fault_x' });          // beforeAll
//   const app = await stage.startApp({ INSTANCE_ID: 'x' });                 // waits for its subscription
//   const pub = await stage.publish(load, { window: 500, ratePerSec: 2000 });
//   await stage.waitForCommitted(4000);
//   ... the fault ...
//   const again = await stage.restartApp(app);                              // same env, session present
//   const { final } = await stage.drain(again, load, pub);                  // all acked, stored, idle
//   await verifyStoredExactlyOnce(stage.db, load);
//   await stage.destroy();                                                  // afterAll
import type { IClientOptions, MqttClient } from 'mqtt';
import { Client } from 'pg';
import { type AppEnv, type AppProcess, buildService, startAppProcess } from './app-process';
import { waitFor } from './free-port';
import {
  type Load,
  type PublishOptions,
  type PublishProgress,
  type Queryable,
  expectNoRejections,
  newProgress,
  publishWindowed,
  sampleCount,
  waitUntilIdle,
  waitUntilStored,
} from './load-check';
import { PrivateMosquitto } from './private-mosquitto';
import { PrivatePostgres } from './private-postgres';
import { connectDevice } from './publisher';
import { createTestDatabase, type TestDatabase } from './test-database';

export interface FaultScenarioOptions {
  /** Names the throw-away database and the publisher's client id. */
  label: string;
  /** `shared` (default): a database on the shared server; `private`: a cluster of the test's own, which it may stop. */
  postgres?: 'shared' | 'private';
}

export type ScenarioDatabase = Queryable & { url: string };

export interface Publishing {
  client: MqttClient;
  progress: PublishProgress;
  /** Resolves once every message is acknowledged (never an unhandled rejection: await it). */
  done: Promise<void>;
}

export interface HealthBody {
  status: string;
  checks: Record<string, { status: string; error?: string; latencyMs?: number }>;
}

/** Writes to samples wait until release(): the test holds LOCK TABLE samples IN EXCLUSIVE MODE (reads still work). */
export interface WriteStall {
  release(): Promise<void>;
}

/** A `subscribed` log line of the service whose MQTT client id belongs to INSTANCE_ID. */
export const subscribedAs = (instanceId: string) => new RegExp(`^(?=.*"msg":"subscribed")(?=.*"clientId":"telemetry-hub-${instanceId}")`);
/** A `subscribed` log line reporting that the broker kept the session (a restart with the same environment). */
export const SUBSCRIBED_TO_KEPT_SESSION = /^(?=.*"msg":"subscribed")(?=.*"sessionPresent":true)/;

/** GET /health with its body (undefined when it is not JSON). */
export async function fetchHealth(app: AppProcess): Promise<{ status: number; body: HealthBody | undefined }> {
  const res = await app.fetch('/health', { signal: AbortSignal.timeout(3000) });
  return { status: res.status, body: (await res.json().catch(() => undefined)) as HealthBody | undefined };
}

export class FaultScenario {
  readonly apps: AppProcess[] = [];
  private readonly publishers: MqttClient[] = [];
  private readonly stalls: Client[] = [];

  private constructor(
    private readonly label: string,
    readonly broker: PrivateMosquitto,
    readonly db: ScenarioDatabase,
    private readonly dropDatabase: () => Promise<void>,
  ) {}

  /** Builds the service and starts the broker and the database; what started is stopped again if another part fails. */
  static async start(options: FaultScenarioOptions): Promise<FaultScenario> {
    const [built, broker, database] = await Promise.allSettled([
      buildService(),
      PrivateMosquitto.start(),
      options.postgres === 'private' ? PrivatePostgres.start() : createTestDatabase(options.label),
    ]);
    const failure = [built, broker, database].find((r) => r.status === 'rejected');
    if (failure) {
      if (broker.status === 'fulfilled') await broker.value.destroy().catch(() => undefined);
      if (database.status === 'fulfilled') await dropOf(database.value)().catch(() => undefined);
      throw failure.reason;
    }
    const db = (database as PromiseFulfilledResult<TestDatabase | PrivatePostgres>).value;
    return new FaultScenario(options.label, (broker as PromiseFulfilledResult<PrivateMosquitto>).value, db, dropOf(db));
  }

  /** The private cluster (postgres: 'private' only), for stop() / start(). */
  get postgres(): PrivatePostgres {
    if (!(this.db instanceof PrivatePostgres)) throw new Error('this scenario runs on the shared PostgreSQL');
    return this.db;
  }

  /**
   * Starts the built service on this stage's database and broker (env adds to
   * or overrides them; INSTANCE_ID required) and resolves once it has
   * subscribed, as its log says.
   */
  async startApp(env: AppEnv & { INSTANCE_ID: string }, subscribed: RegExp = subscribedAs(env.INSTANCE_ID)): Promise<AppProcess> {
    const app = await startAppProcess({ DATABASE_URL: this.db.url, MQTT_URL: this.broker.url, ...env });
    this.apps.push(app);
    await app.waitForOutput(subscribed, 10_000);
    return app;
  }

  /** The same environment again (same client id): resolves once it is subscribed to the session the broker kept. */
  async restartApp(previous: AppProcess): Promise<AppProcess> {
    const app = await startAppProcess(previous.env);
    this.apps.push(app);
    await app.waitForOutput(SUBSCRIBED_TO_KEPT_SESSION, 10_000);
    return app;
  }

  /** A device connection of the test (client id `<label>-publisher-<pid>` unless given) publishing the load, windowed. */
  async publish(load: Load, options: PublishOptions, clientOptions: IClientOptions = {}): Promise<Publishing> {
    const client = await connectDevice(this.broker.url, { clientId: `${this.label}-publisher-${process.pid}`, ...clientOptions });
    this.publishers.push(client);
    const progress = newProgress();
    const done = publishWindowed(client, load, options, progress);
    done.catch(() => undefined); // the test awaits it later; no unhandled rejection meanwhile
    return { client, progress, done };
  }

  /** Waits until at least `samples` rows are committed. */
  async waitForCommitted(samples: number, timeoutMs = 20_000): Promise<void> {
    await waitFor(async () => (await sampleCount(this.db)) >= samples, timeoutMs, `${samples} committed samples`);
  }

  /** LOCK TABLE samples IN EXCLUSIVE MODE on a connection of its own: the service's writes stall until release(). */
  async stallWrites(applicationName = `${this.label}-lock`): Promise<WriteStall> {
    const locker = new Client({ connectionString: this.db.url, application_name: applicationName });
    await locker.connect();
    this.stalls.push(locker);
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE samples IN EXCLUSIVE MODE');
    return {
      release: async () => {
        await locker.query('ROLLBACK');
        await locker.end();
        this.stalls.splice(this.stalls.indexOf(locker), 1);
      },
    };
  }

  /**
   * The end of every scenario: the publisher got every PUBACK, and the app
   * stored the whole load (or went idle: the exact checks then say what is
   * missing), let late redeliveries land, and rejected nothing. Resolves with
   * the app's final /metrics and when the load was found stored.
   */
  async drain(app: AppProcess, load: Load, publishing: Publishing): Promise<{ final: string; storedAt: number }> {
    await publishing.done;
    expect(publishing.progress.acked).toBe(load.messages);
    await waitUntilStored(this.db, load, app);
    const storedAt = Date.now();
    const final = await waitUntilIdle(app);
    expectNoRejections(final);
    return { final, storedAt };
  }

  async destroy(): Promise<void> {
    for (const locker of this.stalls.splice(0)) await locker.end().catch(() => undefined);
    await Promise.all(this.apps.map((app) => app.stop().catch(() => undefined)));
    for (const client of this.publishers.splice(0)) await client.endAsync(true).catch(() => undefined);
    await this.broker.destroy().catch(() => undefined);
    await this.dropDatabase().catch(() => undefined);
  }
}

function dropOf(db: TestDatabase | PrivatePostgres): () => Promise<void> {
  return db instanceof PrivatePostgres ? () => db.destroy() : () => db.drop();
}
