// A promise rejection nobody handles must not stop the service. Node ends the
// process on one by default, and libraries create promises of their own that
// no caller can reach: ioredis, after a reconnect, re-sends SELECT and
// SUBSCRIBE itself, and with the fail-fast command timeout those reject with
// "Command timed out" on a busy machine. Such a rejection is logged (once
// per message and minute, with its stack, so a bug of ours shows where it is)
// and the process carries on; the component that owns the connection has
// already seen the failure through its own commands.
import type { EventEmitter } from 'node:events';

export interface WarnLogger {
  warn(message: unknown): void;
}

const REPEAT_AFTER_MS = 60_000;

export function logStrayRejections(target: EventEmitter, logger: WarnLogger, now: () => number = Date.now): void {
  const lastLogged = new Map<string, number>();
  target.on('unhandledRejection', (reason: unknown) => {
    const error = reason instanceof Error ? reason.message : String(reason);
    const at = now();
    const last = lastLogged.get(error);
    if (last !== undefined && at - last < REPEAT_AFTER_MS) return;
    if (lastLogged.size > 100) lastLogged.clear();
    lastLogged.set(error, at);
    logger.warn({ msg: 'a promise rejection was not handled; the service carries on', error, stack: reason instanceof Error ? reason.stack : undefined });
  });
}
