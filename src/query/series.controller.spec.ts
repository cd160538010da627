// The three time-series routes are described in the OpenAPI document with
// their parameters and answer schemas (what /docs/json publishes).
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Test } from '@nestjs/testing';
import { SeriesController } from './series.controller';
import { SeriesService } from './series.service';

describe('SeriesController in the OpenAPI document', () => {
  let app: NestFastifyApplication;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ controllers: [SeriesController], providers: [{ provide: SeriesService, useValue: {} }] }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger: false });
    await app.init();
  });

  afterAll(async () => {
    await app?.close();
  });

  it('lists each route with its parameters and a 200 answer schema', () => {
    const document = SwaggerModule.createDocument(app, new DocumentBuilder().setTitle('t').build());
    const expected: Record<string, string[]> = {
      '/api/devices/{id}/series': ['id', 'metric', 'from', 'to', 'interval', 'tz', 'agg', 'fill'],
      '/api/series': ['devices', 'metric', 'from', 'to', 'interval', 'tz', 'agg', 'fill'],
      '/api/devices/{id}/samples.csv': ['id', 'metric', 'from', 'to'],
    };
    for (const [path, parameters] of Object.entries(expected)) {
      const operation = document.paths[path]?.get;
      expect(operation).toBeDefined();
      expect((operation!.parameters ?? []).map((p) => ('name' in p ? p.name : '')).sort()).toEqual([...parameters].sort());
      const ok = operation!.responses['200'] as { content?: Record<string, { schema?: unknown }> };
      expect(Object.values(ok.content ?? {})[0]?.schema).toBeDefined();
      expect(operation!.responses['400']).toBeDefined();
      expect(operation!.responses['404']).toBeDefined();
    }
    const series = (document.paths['/api/devices/{id}/series'].get!.responses['200'] as { content: Record<string, { schema: { required: string[] } }> })
      .content['application/json'].schema;
    expect(series.required).toEqual(['deviceId', 'interval', 'tz', 'from', 'to', 'series']);
    expect(Object.keys((document.paths['/api/devices/{id}/samples.csv'].get!.responses['200'] as { content: object }).content)).toEqual(['text/csv']);
  });
});
