// Embedded PostgreSQL for `npm start` with no DATABASE_URL: PGlite (Postgres
// compiled to WASM) persisted in DATA_DIR, served on a loopback port by
// pglite-socket so the rest of the service talks plain `pg` to it exactly as
// it would to a real server. (typeorm-pglite is not used: it shares one
// session between pooled connections, which breaks transaction isolation.)
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export const EMBEDDED_MAX_CONNECTIONS = 8;

export class EmbeddedPostgres {
  private constructor(
    private readonly db: PGlite,
    private readonly server: PGLiteSocketServer,
    readonly url: string,
  ) {}

  static async start(dataDir: string): Promise<EmbeddedPostgres> {
    const dir = resolve(join(dataDir, 'pg'));
    await mkdir(dir, { recursive: true });
    const db = await PGlite.create({ dataDir: dir });
    const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: EMBEDDED_MAX_CONNECTIONS });
    await server.start();
    // getServerConn() is "host:port".
    const url = `postgres://postgres@${server.getServerConn()}/postgres`;
    return new EmbeddedPostgres(db, server, url);
  }

  async stop(): Promise<void> {
    await this.server.stop();
    await this.db.close();
  }
}
