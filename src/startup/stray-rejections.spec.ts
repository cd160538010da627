import { EventEmitter } from 'node:events';
import { logStrayRejections } from './stray-rejections';

describe('logStrayRejections', () => {
  it('logs an unhandled rejection once per message and minute, with its stack', () => {
    const target = new EventEmitter();
    const lines: Array<Record<string, unknown>> = [];
    let clock = 1_000;
    logStrayRejections(target, { warn: (line) => lines.push(line as Record<string, unknown>) }, () => clock);

    const timedOut = new Error('Command timed out');
    target.emit('unhandledRejection', timedOut);
    target.emit('unhandledRejection', new Error('Command timed out'));
    target.emit('unhandledRejection', 'a plain string');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ error: 'Command timed out', stack: timedOut.stack });
    expect(lines[1]).toMatchObject({ error: 'a plain string', stack: undefined });

    clock += 60_000;
    target.emit('unhandledRejection', new Error('Command timed out'));
    expect(lines).toHaveLength(3);
  });
});
