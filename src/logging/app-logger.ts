// Structured logging: one pino line per event, JSON when stdout is not a
// terminal and pino-pretty when it is. Every line passes through the secret
// masker, so a password in a URL or a configured token never reaches output.
import type { LoggerService } from '@nestjs/common';
import pino, { type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';

const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)([^@/?#\s]+)@/gi;

export class SecretMasker {
  private readonly secrets: string[];

  constructor(secrets: readonly string[]) {
    // Longest first so a secret that contains another is masked whole.
    this.secrets = [...secrets].filter((s) => s.length >= 3).sort((a, b) => b.length - a.length);
  }

  mask(text: string): string {
    let out = text.replace(URL_CREDENTIALS, '$1***@');
    for (const secret of this.secrets) {
      if (out.includes(secret)) out = out.split(secret).join('***');
    }
    return out;
  }

  /** Masks every string inside a log object (errors become {type,message,stack}). */
  maskValue(value: unknown, depth = 0): unknown {
    if (typeof value === 'string') return this.mask(value);
    if (depth > 6 || value === null || typeof value !== 'object') return value;
    if (value instanceof Error) {
      return { type: value.name, message: this.mask(value.message), stack: value.stack ? this.mask(value.stack) : undefined };
    }
    if (Array.isArray(value)) return value.map((v) => this.maskValue(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) out[key] = this.maskValue(inner, depth + 1);
    return out;
  }
}

export interface AppLoggerOptions {
  level: string;
  secrets: readonly string[];
  instanceId: string;
  /** Defaults to stdout; tests pass a capturing stream. */
  destination?: DestinationStream;
  pretty?: boolean;
}

export class AppLogger implements LoggerService {
  readonly pino: Logger;
  private readonly masker: SecretMasker;

  constructor(options: AppLoggerOptions) {
    this.masker = new SecretMasker(options.secrets);
    const usePretty = options.pretty ?? (options.destination === undefined && process.stdout.isTTY === true);
    const destination =
      options.destination ??
      (usePretty ? pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,instance' }) : pino.destination({ sync: true }));
    this.pino = pino(
      {
        level: options.level,
        base: { instance: options.instanceId },
        timestamp: pino.stdTimeFunctions.isoTime,
        formatters: { level: (label) => ({ level: label }) },
        // `err` is already a masked {type,message,stack}; pino's default serializer would rename its type to "Object".
        serializers: { err: (value: unknown) => value },
      },
      destination,
    );
  }

  log(message: unknown, ...rest: unknown[]): void {
    this.write('info', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.write('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.write('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.write('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.write('trace', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.write('fatal', message, rest);
  }

  flush(): void {
    this.pino.flush();
  }

  /**
   * Nest calls log(message, context) or error(message, stack, context); the last
   * string argument is the context. An object message becomes structured fields.
   */
  private write(level: pino.Level, message: unknown, rest: unknown[]): void {
    if (!this.pino.isLevelEnabled(level)) return;
    const args = [...rest];
    const context = typeof args[args.length - 1] === 'string' ? (args.pop() as string) : undefined;
    const fields: Record<string, unknown> = context ? { context } : {};
    for (const extra of args) {
      if (extra instanceof Error) fields.err = this.masker.maskValue(extra);
      else if (typeof extra === 'string') fields.stack = this.masker.mask(extra);
      else if (extra && typeof extra === 'object') Object.assign(fields, this.masker.maskValue(extra));
    }
    if (message instanceof Error) {
      fields.err = this.masker.maskValue(message);
      this.pino[level](fields, this.masker.mask(message.message));
    } else if (message && typeof message === 'object') {
      const { msg, ...other } = this.masker.maskValue(message) as Record<string, unknown>;
      this.pino[level]({ ...fields, ...other }, typeof msg === 'string' ? msg : '');
    } else {
      this.pino[level](fields, this.masker.mask(String(message)));
    }
  }
}
