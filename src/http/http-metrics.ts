// Records http_request_duration_seconds for every request, labelled with the
// route template (/api/devices/:id/latest), never the raw URL, so label
// values stay bounded.
import type { FastifyInstance } from 'fastify';
import type { TelemetryMetrics } from '../metrics/telemetry-metrics';

export function instrumentHttp(fastify: FastifyInstance, metrics: TelemetryMetrics): void {
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    metrics.httpRequestDuration
      .labels(request.method, route, String(reply.statusCode))
      .observe(reply.elapsedTime / 1000);
    done();
  });
}
