// The live dashboard page and its assets (`GET /`).
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { CONTENT_TYPES, serveFiles } from './static-files';

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
 * The live dashboard: plain files from public/ plus uPlot from
 * node_modules, as exact routes. Resolved from this file, so it works from
 * dist/ and under Jest.
 */
export function serveDashboard(fastify: FastifyInstance): void {
  const publicDir = join(__dirname, '..', '..', 'public');
  const uplotDir = join(dirname(require.resolve('uplot/package.json')), 'dist');
  const { html, js, css } = CONTENT_TYPES;
  serveFiles(fastify, [
    ['/', join(publicDir, 'index.html'), html],
    ['/dashboard.js', join(publicDir, 'dashboard.js'), js],
    ['/dashboard.css', join(publicDir, 'dashboard.css'), css],
    ['/vendor/uplot.min.js', join(uplotDir, 'uPlot.iife.min.js'), js],
    ['/vendor/uplot.min.css', join(uplotDir, 'uPlot.min.css'), css],
  ]);
}
