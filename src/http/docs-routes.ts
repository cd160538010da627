// The OpenAPI document (`GET /docs/json`) and Swagger UI (`GET /docs`).
import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import { ADMIN_SECURITY } from './api-docs';
import { CONTENT_TYPES, serveFiles } from './static-files';

/**
 * Built once from the controllers' decorators. Routes that are plain Fastify
 * routes rather than controllers (the dashboard page, these docs) are added by
 * hand so the document lists every route a user can call.
 */
export function createOpenApiDocument(app: INestApplication): OpenAPIObject {
  const { version } = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  const config = new DocumentBuilder()
    .setTitle('telemetry-hub')
    .setDescription(
      'Sensor samples received over MQTT, stored in PostgreSQL with rollups, served from a hot cache. ' +
        'Errors are `{"statusCode": N, "message": "…"}`. The WebSocket feed at `/ws`, the MQTT payload rules, ' +
        'the metrics and the configuration are described in docs/api.md.',
    )
    .setVersion(version)
    .addTag('devices', 'devices and their stored samples')
    .addTag('dashboard', 'fleet-wide figures')
    .addTag('cache', 'the hot cache (Redis, or memory)')
    .addTag('health', 'for load balancers and orchestrators')
    .addTag('metrics', 'for Prometheus')
    .addApiKey({ type: 'apiKey', in: 'header', name: 'x-api-key', description: 'the value of ADMIN_API_KEY' }, ADMIN_SECURITY)
    .build();
  // Tags come from @ApiTags only: one controller may hold routes of two topics.
  const document = SwaggerModule.createDocument(app, config, { autoTagControllers: false });
  // An answer documented without a description gets its status text ("OK"), not an empty line.
  for (const item of Object.values(document.paths)) {
    for (const operation of Object.values(item)) {
      const responses = (operation as { responses?: Record<string, { description?: string }> }).responses;
      for (const [status, response] of Object.entries(responses ?? {})) {
        if (!response.description) response.description = STATUS_CODES[status] ?? status;
      }
    }
  }
  const page = (summary: string, description: string, type: string) => ({
    get: {
      tags: ['pages'],
      summary,
      description,
      responses: { '200': { description: 'OK', content: { [type]: { schema: { type: 'string' as const } } } } },
    },
  });
  document.paths['/'] = page('Live dashboard', 'An HTML page fed by the WebSocket: devices, charts of the selected one, fleet figures.', 'text/html');
  document.paths['/docs'] = page('Swagger UI', 'This API, browsable.', 'text/html');
  document.paths['/docs/json'] = {
    get: {
      tags: ['pages'],
      summary: 'This OpenAPI document',
      responses: { '200': { description: 'OK', content: { 'application/json': { schema: { type: 'object' } } } } },
    },
  };
  return document;
}

/**
 * Serves the document and the Swagger UI page as a fixed list of exact routes
 * (no directory serving, as for the dashboard), with Swagger UI's files from
 * the swagger-ui-dist package that @nestjs/swagger depends on. The page and
 * its initializer are our own files: the Content-Security-Policy allows no
 * inline script, which the page @nestjs/swagger generates would need.
 */
export function serveApiDocs(fastify: FastifyInstance, document: OpenAPIObject): void {
  const json = JSON.stringify(document);
  fastify.get('/docs/json', async (_request, reply) => reply.type('application/json; charset=utf-8').send(json));

  const docsDir = join(__dirname, '..', '..', 'public', 'docs');
  const requireFromSwagger = createRequire(require.resolve('@nestjs/swagger'));
  const uiDir = dirname(requireFromSwagger.resolve('swagger-ui-dist/package.json'));
  const { html, js, css } = CONTENT_TYPES;
  serveFiles(fastify, [
    ['/docs', join(docsDir, 'index.html'), html],
    ['/docs/swagger-initializer.js', join(docsDir, 'swagger-initializer.js'), js],
    ['/docs/swagger-ui.css', join(uiDir, 'swagger-ui.css'), css],
    ['/docs/swagger-ui-bundle.js', join(uiDir, 'swagger-ui-bundle.js'), js],
    ['/docs/swagger-ui-standalone-preset.js', join(uiDir, 'swagger-ui-standalone-preset.js'), js],
  ]);
}
