import { Logger } from '@nestjs/common';
import type { AppConfig } from '../config/app-config';
import { DatabaseService } from './database.service';

describe('DatabaseService.markReachable', () => {
  it('logs each flip once, and ignores a failure of a call that started before a success was seen', () => {
    const lines: string[] = [];
    jest.spyOn(Logger.prototype, 'log').mockImplementation((m: unknown) => void lines.push(String(m)));
    jest.spyOn(Logger.prototype, 'error').mockImplementation((m: unknown) => void lines.push((m as { msg: string }).msg));
    const db = new DatabaseService({} as AppConfig);

    db.markReachable(false, new Error('timed out'), 1000); // link went silent
    db.markReachable(false, new Error('timed out'), 1100); // another lane, same outage
    db.markReachable(true, undefined, 5000); // back
    // A write stuck since before the recovery times out afterwards: old news.
    db.markReachable(false, new Error('timed out'), 4000);
    expect(lines).toEqual(['PostgreSQL unreachable', 'PostgreSQL reachable again']);

    // A call that started after the success and failed is a new outage.
    db.markReachable(false, new Error('timed out'), 6000);
    expect(lines).toEqual(['PostgreSQL unreachable', 'PostgreSQL reachable again', 'PostgreSQL unreachable']);
    jest.restoreAllMocks();
  });
});
