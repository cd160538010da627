// Every HTTP error leaves in one shape, {statusCode, message} with message one
// string (docs/api.md HTTP API). Unexpected errors become a 500 without internals and
// are logged.
import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { FastifyReply } from 'fastify';

function messageOf(exception: HttpException): string {
  const body = exception.getResponse();
  if (typeof body === 'string') return body;
  const message = (body as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : exception.message;
}

@Catch()
export class HttpExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('Http');

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') return;
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    let statusCode = 500;
    let message = 'Internal server error';
    if (exception instanceof HttpException) {
      statusCode = exception.getStatus();
      message = messageOf(exception);
    } else if (isFastifyClientError(exception)) {
      statusCode = exception.statusCode;
      message = exception.message;
    } else {
      this.logger.error({ msg: 'unhandled error', error: exception instanceof Error ? exception.message : String(exception) });
    }
    void reply.status(statusCode).send({ statusCode, message });
  }
}

/** Fastify's own 4xx errors (bad JSON body, body too large) carry statusCode. */
function isFastifyClientError(e: unknown): e is { statusCode: number; message: string } {
  const code = (e as { statusCode?: unknown })?.statusCode;
  return typeof code === 'number' && code >= 400 && code < 500;
}
