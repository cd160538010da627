// The live dashboard page and its assets (CONTRACT §4 `GET /`).
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';

/** Applied by helmet to every response: same-origin scripts, styles and WebSocket only. */
export const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  connectSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  styleSrc: ["'self'", "'unsafe-inline'"],
  scriptSrc: ["'self'"],
  frameAncestors: ["'none'"],
  // Plain-HTTP deployments (a LAN address) must still load the page's own scripts.
  upgradeInsecureRequests: null,
};

/**
 * The live dashboard (CONTRACT §4 `GET /`): plain files from public/ plus
 * uPlot from node_modules, served as a fixed list of exact routes (no
 * directory serving, so nothing else is reachable and /api, /health,
 * /metrics and /ws are untouched). Read per request: small, and edits show
 * on reload. Resolved from this file, so it works from dist/ and under Jest.
 */
export function serveDashboard(fastify: FastifyInstance): void {
  const publicDir = join(__dirname, '..', '..', 'public');
  const uplotDir = join(dirname(require.resolve('uplot/package.json')), 'dist');
  const js = 'text/javascript; charset=utf-8';
  const css = 'text/css; charset=utf-8';
  const files: Array<[url: string, file: string, type: string]> = [
    ['/', join(publicDir, 'index.html'), 'text/html; charset=utf-8'],
    ['/dashboard.js', join(publicDir, 'dashboard.js'), js],
    ['/dashboard.css', join(publicDir, 'dashboard.css'), css],
    ['/vendor/uplot.min.js', join(uplotDir, 'uPlot.iife.min.js'), js],
    ['/vendor/uplot.min.css', join(uplotDir, 'uPlot.min.css'), css],
  ];
  for (const [url, file, type] of files) {
    fastify.get(url, async (_request, reply) =>
      reply
        .type(type)
        .header('cache-control', 'no-cache')
        .send(await readFile(file)),
    );
  }
}
