// The OpenAPI document at /docs/json must describe every route the app
// serves: the routes are read from the running Fastify instance (not from a
// list kept here), so a route added without its @nestjs/swagger decorators
// fails this test. Swagger UI at /docs must load under the app's
// Content-Security-Policy (no inline script), checked in headless Chromium
// when /usr/bin/chromium exists (required under CI=true).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, HTTPMethods } from 'fastify';
import { type BrowserContext, chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_FLAGS, haveChromium, itInBrowser } from '../support/chromium';
import { startTestApp, type TestApp } from '../support/test-app';

interface Route {
  method: string;
  url: string;
}

/**
 * Every method + URL registered on Fastify, from its public printRoutes()
 * tree (`├── /:id (DELETE)` lines, each segment appended to its parent's
 * path). Each result is confirmed with hasRoute(), so a line this parser
 * misreads fails the test instead of silently leaving a route unchecked.
 */
function servedRoutes(fastify: FastifyInstance): Route[] {
  const routes: Route[] = [];
  const pathAtDepth: string[] = [];
  for (const line of fastify.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) {
      if (line.trim() !== '') throw new Error(`cannot read route line ${JSON.stringify(line)}`);
      continue;
    }
    const depth = match[1].length / 4;
    // A top-level wildcard is printed as `*` beside `/`: its path is `/*`.
    const path = depth === 0 ? (match[2].startsWith('/') ? match[2] : `/${match[2]}`) : pathAtDepth[depth - 1] + match[2];
    pathAtDepth[depth] = path;
    pathAtDepth.length = depth + 1;
    for (const method of match[3]?.split(', ') ?? []) routes.push({ method, url: path });
  }
  for (const route of routes) {
    if (!fastify.hasRoute({ method: route.method as HTTPMethods, url: route.url })) {
      throw new Error(`route listing misread: ${route.method} ${route.url} is not a registered route`);
    }
  }
  return routes;
}

type Schema = { $ref?: string } & Record<string, unknown>;
interface Operation {
  summary?: string;
  tags?: string[];
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: Schema }>;
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
}
interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, unknown>; securitySchemes?: Record<string, unknown> };
}

/** `/api/devices/:id/latest` → `/api/devices/{id}/latest`. */
const openApiPath = (url: string) => url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

/** What is wrong with one operation's description; empty when nothing. */
function problemsOf(route: Route, operation: Operation | undefined): string[] {
  const name = `${route.method} ${route.url}`;
  if (!operation) return [`${name}: missing from /docs/json`];
  const problems: string[] = [];
  if (!operation.summary) problems.push(`${name}: no summary (@ApiOperation)`);
  if (!operation.tags?.length) problems.push(`${name}: no tag (@ApiTags)`);
  const responses = Object.entries(operation.responses ?? {});
  const hasSchema = (r: { content?: Record<string, { schema?: Schema }> }) => Object.values(r.content ?? {}).some((c) => c.schema !== undefined);
  const success = responses.filter(([status]) => /^2(\d\d|XX)$/.test(status));
  if (success.length === 0) problems.push(`${name}: no 2xx answer`);
  for (const [status, response] of success) {
    if (status !== '204' && !hasSchema(response)) problems.push(`${name}: ${status} answer has no schema`);
  }
  for (const [status, response] of responses) {
    if (/^[45]/.test(status) && !hasSchema(response)) problems.push(`${name}: ${status} answer has no schema`);
  }
  for (const [, param] of openApiPath(route.url).matchAll(/\{([^}]+)\}/g)) {
    const declared = operation.parameters?.find((p) => p.in === 'path' && p.name === param);
    if (!declared) problems.push(`${name}: path parameter ${param} not declared`);
    else if (!declared.schema) problems.push(`${name}: path parameter ${param} has no schema`);
  }
  return problems;
}

function danglingRefs(document: OpenApiDocument): string[] {
  const refs = new Set<string>();
  const walk = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === '$ref' && typeof inner === 'string') refs.add(inner);
        else walk(inner);
      }
    }
  };
  walk(document.paths);
  walk(document.components);
  const schemas = document.components?.schemas ?? {};
  return [...refs].filter((ref) => !(ref.startsWith('#/components/schemas/') && ref.slice('#/components/schemas/'.length) in schemas));
}

/** The files a page loads itself (`<script src>`, `<link href>`), resolved against the page's URL. */
function referencedFiles(html: string, pageUrl: string): string[] {
  const refs = [...html.matchAll(/<(?:script[^>]*\ssrc|link[^>]*\shref)="([^"]+)"/g)].map((m) => m[1]);
  return refs.filter((ref) => !ref.startsWith('data:')).map((ref) => new URL(ref, pageUrl).pathname);
}

describe('OpenAPI document and Swagger UI', () => {
  let app: TestApp;
  let dataDir: string;
  let document: OpenApiDocument;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'th-e2e-openapi-'));
    app = await startTestApp({ DATA_DIR: dataDir, MQTT_PORT: '0', MQTT_URL: undefined, DATABASE_URL: undefined, LOG_LEVEL: 'warn' });
    const res = await fetch(`${app.baseUrl}/docs/json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    document = (await res.json()) as OpenApiDocument;
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('describes every route the app serves, with a summary, answer schemas and path parameters', async () => {
    const page = await fetch(`${app.baseUrl}/`);
    const dashboardAssets = new Set(referencedFiles(await page.text(), `${app.baseUrl}/`));
    expect(dashboardAssets.size).toBeGreaterThan(0);
    const routes = servedRoutes(app.app.getHttpAdapter().getInstance());
    const getUrls = new Set(routes.filter((r) => r.method === 'GET').map((r) => r.url));
    const documented = routes.filter(
      (r) =>
        !(r.method === 'HEAD' && getUrls.has(r.url)) && // Fastify's automatic HEAD for each GET
        !(r.method === 'OPTIONS' && r.url === '/*') && // the CORS preflight handler
        !(r.url === '/docs' || r.url.startsWith('/docs/')) &&
        r.url !== '/ws' &&
        !dashboardAssets.has(r.url),
    );
    // The listing itself must work: these routes exist whatever else is added.
    expect(documented).toEqual(
      expect.arrayContaining([
        { method: 'GET', url: '/' },
        { method: 'GET', url: '/api/devices/:id/latest' },
        { method: 'DELETE', url: '/api/devices/:id' },
        { method: 'POST', url: '/api/cache/clear' },
        { method: 'GET', url: '/metrics' },
        { method: 'GET', url: '/health' },
      ]),
    );
    const problems = documented.flatMap((route) => problemsOf(route, document.paths[openApiPath(route.url)]?.[route.method.toLowerCase()]));
    expect(problems).toEqual([]);
  });

  it('lists no operation the app does not serve, and every schema reference resolves', () => {
    const fastify = app.app.getHttpAdapter().getInstance();
    const unserved: string[] = [];
    for (const [path, item] of Object.entries(document.paths)) {
      const url = path.replace(/\{([^}]+)\}/g, ':$1');
      for (const method of Object.keys(item)) {
        if (!fastify.hasRoute({ method: method.toUpperCase() as HTTPMethods, url })) unserved.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(unserved).toEqual([]);
    expect(document.openapi).toMatch(/^3\./);
    expect(danglingRefs(document)).toEqual([]);
  });

  it('documents the error body once and the admin key on the admin routes', () => {
    expect(document.components?.schemas?.ErrorBody).toMatchObject({
      properties: { statusCode: { type: 'number' }, message: { type: 'string' } },
      required: ['statusCode', 'message'],
    });
    expect(document.components?.securitySchemes?.admin).toEqual(expect.objectContaining({ type: 'apiKey', in: 'header', name: 'x-api-key' }));
    const op = (path: string, method: string) => document.paths[path][method] as Operation & { security?: unknown };
    for (const [path, method] of [
      ['/api/devices/{id}', 'delete'],
      ['/api/cache/clear', 'post'],
    ]) {
      expect(op(path, method).security).toEqual([{ admin: [] }]);
      expect(op(path, method).responses?.['403']?.content?.['application/json']?.schema).toEqual({ $ref: '#/components/schemas/ErrorBody' });
    }
    expect(op('/api/devices/{id}/latest', 'get').security).toBeUndefined();
    const samples = op('/api/devices/{id}/samples', 'get').parameters ?? [];
    expect(samples.find((p) => p.name === 'limit')).toMatchObject({
      in: 'query',
      required: false,
      schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 },
    });
    expect(samples.find((p) => p.name === 'id')?.schema).toMatchObject({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' });
  });

  it('serves /docs as a page whose scripts and styles are same-origin files', async () => {
    const res = await fetch(`${app.baseUrl}/docs`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/); // an inline script would be blocked by the CSP
    const files = referencedFiles(html, `${app.baseUrl}/docs`);
    expect(files).toEqual(expect.arrayContaining(['/docs/swagger-ui.css', '/docs/swagger-ui-bundle.js', '/docs/swagger-initializer.js']));
    for (const file of files) {
      const asset = await fetch(app.baseUrl + file);
      const type = file.endsWith('.css') ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8';
      expect({ file, status: asset.status, type: asset.headers.get('content-type') }).toEqual({ file, status: 200, type });
      expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(100);
    }
  });

  itInBrowser(
    `renders every operation in Swagger UI${haveChromium || process.env.CI === 'true' ? '' : ` [skipped: ${CHROMIUM} is missing]`}`,
    async () => {
      const profileDir = await mkdtemp(join(tmpdir(), 'th-chromium-'));
      let context: BrowserContext | undefined;
      const pageErrors: string[] = [];
      try {
        context = await chromium.launchPersistentContext(profileDir, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
        const page = context.pages()[0] ?? (await context.newPage());
        page.on('pageerror', (error) => pageErrors.push(error.message));
        page.on('console', (message) => {
          if (message.type() === 'error') pageErrors.push(message.text());
        });
        await page.goto(`${app.baseUrl}/docs`);
        await page.locator('.opblock').first().waitFor({ timeout: 20_000 });
        const expected = Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
        // An operation with two tags is shown twice: compare the sets.
        const shown = await page
          .locator('.opblock')
          .evaluateAll((blocks) =>
            blocks.map((b) =>
              `${b.querySelector('.opblock-summary-method')?.textContent} ${b.querySelector('.opblock-summary-path')?.textContent}`.replace(/\u200b/g, ''),
            ),
          );
        expect([...new Set(shown)].sort()).toEqual(expected.sort());
        expect(pageErrors).toEqual([]);
      } finally {
        await context?.close().catch(() => undefined);
        await rm(profileDir, { recursive: true, force: true });
      }
    },
    60_000,
  );
});
