// A fixed list of files served as exact routes: no directory serving, so
// nothing else on disk is reachable and the API's routes are untouched. Read
// per request: small, and edits show on reload. Used by the dashboard page and
// the API docs.
import { readFile } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';

export const CONTENT_TYPES = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
} as const;

export type StaticFile = [url: string, file: string, type: string];

export function serveFiles(fastify: FastifyInstance, files: readonly StaticFile[]): void {
  for (const [url, file, type] of files) {
    fastify.get(url, async (_request, reply) =>
      reply
        .type(type)
        .header('cache-control', 'no-cache')
        .send(await readFile(file)),
    );
  }
}
