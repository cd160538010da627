// Building blocks for the OpenAPI description of the HTTP API (served at
// /docs/json, see docs-routes.ts). Every route documents its answers through
// these, so the error body and the admin key are described once.
import { applyDecorators } from '@nestjs/common';
import { ApiParam, ApiProperty, ApiQuery, ApiResponse, ApiSecurity } from '@nestjs/swagger';
import { DEVICE_ID_PATTERN } from '../telemetry/telemetry-rules';

/** Name of the security scheme of admin routes (the `x-api-key` header). */
export const ADMIN_SECURITY = 'admin';

/** What every HTTP error looks like (http-exception.filter.ts). */
export class ErrorBody {
  @ApiProperty({ description: 'the HTTP status code, repeated', example: 404 })
  statusCode!: number;

  @ApiProperty({ description: 'what went wrong, as one string', example: 'device dev-1 not found' })
  message!: string;
}

/** Default wording of the error answers; a route passes its own where it says more. */
const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: 'a parameter or the body is invalid; `message` names it',
  403: 'the `x-api-key` header is missing or wrong, or the service has no ADMIN_API_KEY',
  404: 'no such device',
  413: 'the request body is larger than 64 KiB',
  429: 'too many requests; the `Retry-After` header says in how many seconds to try again',
  503: 'the service is down',
};

/**
 * Documents error answers, all with the ErrorBody schema:
 * `@ApiErrors(400, 404)` or `@ApiErrors({ 404: 'no such rule' })`.
 */
export function ApiErrors(...errors: Array<number | Record<number, string>>): MethodDecorator & ClassDecorator {
  const entries: Array<[number, string]> = [];
  for (const error of errors) {
    if (typeof error === 'number') entries.push([error, ERROR_DESCRIPTIONS[error] ?? 'error']);
    else for (const [status, description] of Object.entries(error)) entries.push([Number(status), description]);
  }
  return applyDecorators(...entries.map(([status, description]) => ApiResponse({ status, description, type: ErrorBody })));
}

/** An admin route: needs `x-api-key: $ADMIN_API_KEY` (AdminKeyGuard), 403 otherwise. */
export function ApiAdmin(): MethodDecorator & ClassDecorator {
  return applyDecorators(ApiSecurity(ADMIN_SECURITY), ApiErrors(403));
}

/** The `:id` path parameter of /api/devices/:id/…; a malformed id is a 400. */
export function ApiDeviceIdParam(): MethodDecorator & ClassDecorator {
  return applyDecorators(
    ApiParam({
      name: 'id',
      description: 'device id, as in the MQTT topic `devices/{id}/telemetry`',
      schema: { type: 'string', pattern: DEVICE_ID_PATTERN.source, example: 'dev-1' },
    }),
  );
}

/** An optional integer query parameter with its bounds and default. */
export function ApiIntQuery(
  name: string,
  bounds: { readonly min: number; readonly max: number; readonly default: number },
  description?: string,
): MethodDecorator & ClassDecorator {
  return ApiQuery({
    name,
    required: false,
    description,
    schema: { type: 'integer', minimum: bounds.min, maximum: bounds.max, default: bounds.default },
  });
}
