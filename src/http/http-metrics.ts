// Records http_request_duration_seconds for every request, labelled with the
// route template (/api/devices/:id/latest), never the raw URL, so label
// values stay bounded.
import type { FastifyInstance } from 'fastify';
import type { TelemetryMetrics } from '../metrics/telemetry-metrics';

export function instrumentHttp(fastify: FastifyInstance, metrics: TelemetryMetrics): void {
  // One labelled child per (method, route, status), looked up by a string key:
  // prom-client's labels() re-hashes the label set on every call.
  const children = new Map<string, { observe(value: number): void }>();
  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    const key = `${request.method} ${route} ${reply.statusCode}`;
    let child = children.get(key);
    if (!child) {
      child = metrics.httpRequestDuration.labels(request.method, route, String(reply.statusCode));
      children.set(key, child);
    }
    child.observe(reply.elapsedTime / 1000);
    done();
  });
}
