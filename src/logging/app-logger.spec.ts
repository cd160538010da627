// docs/api.md Configuration: secrets never appear in logs; logs are one JSON line per event;
// noisy sources are rate-limited.
import { Writable } from 'node:stream';
import { AppLogger, SecretMasker } from './app-logger';
import { RateLimitedLog } from './rate-limited-log';

const SECRETS = ['tok-en-alpha', 'adminKey123', 'wsSecret'];

function capture(level = 'trace', secrets: readonly string[] = SECRETS): { logger: AppLogger; lines: () => Array<Record<string, unknown>>; raw: string[] } {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      raw.push(String(chunk));
      callback();
    },
  });
  const logger = new AppLogger({ level, secrets, instanceId: 'unit-1', destination, pretty: false });
  const lines = () =>
    raw
      .join('')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, lines, raw };
}

describe('SecretMasker', () => {
  const masker = new SecretMasker(SECRETS);

  it.each([
    ['postgres://app:pgPass1@db:5432/telemetry', 'pgPass1', 'postgres://app:***@db:5432/telemetry'],
    ['redis://:redisPass2@cache:6379', 'redisPass2', 'redis://:***@cache:6379'],
    ['rediss://default:redisPass3@cache:6380/0', 'redisPass3', 'rediss://default:***@cache:6380/0'],
    ['mqtt://hub:mqttPass4@broker:1883', 'mqttPass4', 'mqtt://hub:***@broker:1883'],
    ['mqtts://hub:p%40ss5@broker:8883', 'p%40ss5', 'mqtts://hub:***@broker:8883'],
  ])('masks the password of %s', (url, password, masked) => {
    const text = `connecting to ${url} now`;
    const out = masker.mask(text);
    expect(out).toBe(`connecting to ${masked} now`);
    expect(out).not.toContain(password);
  });

  it('keeps URLs without a password and ordinary text unchanged', () => {
    for (const text of ['postgres://app@db:5432/x', 'mqtt://broker:1883', 'ratio 3:4 @ noon', 'http://host/path?a=b']) {
      expect(masker.mask(text)).toBe(text);
    }
  });

  it('masks every configured secret wherever it appears in a message', () => {
    const out = masker.mask('key=adminKey123 token tok-en-alpha and again tok-en-alpha, ws=wsSecret!');
    expect(out).toBe('key=*** token *** and again ***, ws=***!');
  });

  it('masks a secret that contains another secret as a whole', () => {
    const nested = new SecretMasker(['abc', 'xxabcxx']);
    expect(nested.mask('a xxabcxx b abc')).toBe('a *** b ***');
  });

  it('masks strings in object fields, nested objects and arrays', () => {
    const value = {
      url: 'redis://:redisPass2@cache:6379',
      device: { id: 'dev-1', auth: { token: 'tok-en-alpha' } },
      list: ['ok', 'adminKey123', { deeper: 'postgres://u:pgPass1@h/db' }],
      count: 3,
      flag: true,
      none: null,
    };
    const masked = masker.maskValue(value);
    expect(masked).toEqual({
      url: 'redis://:***@cache:6379',
      device: { id: 'dev-1', auth: { token: '***' } },
      list: ['ok', '***', { deeper: 'postgres://u:***@h/db' }],
      count: 3,
      flag: true,
      none: null,
    });
    expect(JSON.stringify(masked)).not.toMatch(/redisPass2|tok-en-alpha|adminKey123|pgPass1/);
    // The input itself is left untouched.
    expect(value.device.auth.token).toBe('tok-en-alpha');
  });

  it('turns an Error into {type, message, stack} with secrets masked in message and stack', () => {
    const error = new TypeError('cannot reach mqtt://hub:mqttPass4@broker with wsSecret');
    const masked = masker.maskValue({ err: error }) as { err: { type: string; message: string; stack: string } };
    expect(masked.err.type).toBe('TypeError');
    expect(masked.err.message).toBe('cannot reach mqtt://hub:***@broker with ***');
    expect(masked.err.stack).toContain('TypeError: cannot reach mqtt://hub:***@broker with ***');
    expect(masked.err.stack).toContain('app-logger.spec');
    expect(JSON.stringify(masked)).not.toMatch(/mqttPass4|wsSecret/);
  });

  it('ignores configured secrets shorter than 3 characters instead of masking every occurrence of them', () => {
    const short = new SecretMasker(['a', 'ab']);
    expect(short.mask('a banana tab')).toBe('a banana tab');
  });
});

describe('AppLogger', () => {
  it('writes exactly one JSON line per call with level, time, msg, context and instance', () => {
    const { logger, lines, raw } = capture();
    const before = Date.now();
    logger.log('service started', 'Bootstrap');
    logger.warn('slow query', 'Database');
    logger.debug('details', 'Ingest');
    expect(raw.join('').split('\n').filter(Boolean)).toHaveLength(3);
    const [info, warn, debug] = lines();
    expect(info).toMatchObject({ level: 'info', msg: 'service started', context: 'Bootstrap', instance: 'unit-1' });
    expect(warn).toMatchObject({ level: 'warn', msg: 'slow query', context: 'Database' });
    expect(debug).toMatchObject({ level: 'debug', msg: 'details', context: 'Ingest' });
    const time = Date.parse(info.time as string);
    expect(info.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(time).toBeGreaterThanOrEqual(before - 5);
    expect(time).toBeLessThanOrEqual(Date.now() + 5);
  });

  it('maps every Nest log method to its level', () => {
    const { logger, lines } = capture();
    logger.log('a');
    logger.error('b');
    logger.warn('c');
    logger.debug('d');
    logger.verbose('e');
    logger.fatal('f');
    expect(lines().map((l) => [l.level, l.msg])).toEqual([
      ['info', 'a'],
      ['error', 'b'],
      ['warn', 'c'],
      ['debug', 'd'],
      ['trace', 'e'],
      ['fatal', 'f'],
    ]);
  });

  it('drops lines below the configured level', () => {
    const { logger, lines } = capture('warn');
    logger.debug('hidden');
    logger.log('hidden too');
    logger.warn('shown');
    logger.error('shown too');
    expect(lines().map((l) => l.msg)).toEqual(['shown', 'shown too']);
  });

  it('keeps structured fields of an object message and takes msg from it', () => {
    const { logger, lines } = capture();
    logger.log({ msg: 'embedded MQTT broker listening', port: 1883, auth: 'open' }, 'EmbeddedBroker');
    expect(lines()).toEqual([
      expect.objectContaining({ level: 'info', msg: 'embedded MQTT broker listening', port: 1883, auth: 'open', context: 'EmbeddedBroker' }),
    ]);
  });

  it("accepts Nest's error(message, stack, context) form", () => {
    const { logger, lines } = capture();
    logger.error('handler failed', 'Error: boom\n    at handler (x.ts:1:1)', 'Http');
    const [line] = lines();
    expect(line).toMatchObject({ level: 'error', msg: 'handler failed', context: 'Http', stack: 'Error: boom\n    at handler (x.ts:1:1)' });
  });

  it('masks secrets in the message, in fields, in nested fields and in errors', () => {
    const { logger, lines, raw } = capture();
    logger.log('using postgres://app:pgPass1@db/telemetry with key adminKey123', 'Boot');
    logger.warn({ msg: 'device rejected tok-en-alpha', device: { token: 'tok-en-alpha', url: 'redis://:redisPass2@c:6379' } }, 'Ingest');
    logger.error(new Error('connect to mqtt://hub:mqttPass4@broker failed, wsSecret refused'), 'Mqtt');
    logger.error('wrapped', new Error('inner adminKey123'), 'Mqtt');
    logger.error('with stack', 'Error: at rediss://u:redisPass3@h:1 adminKey123', 'Cache');
    const text = raw.join('');
    expect(text).not.toMatch(/pgPass1|adminKey123|tok-en-alpha|redisPass2|mqttPass4|wsSecret|redisPass3/);
    const [first, second, third, fourth, fifth] = lines();
    expect(first.msg).toBe('using postgres://app:***@db/telemetry with key ***');
    expect(second).toMatchObject({ msg: 'device rejected ***', device: { token: '***', url: 'redis://:***@c:6379' } });
    expect(third).toMatchObject({ msg: 'connect to mqtt://hub:***@broker failed, *** refused', context: 'Mqtt' });
    expect((third.err as { stack: string }).stack).toContain('connect to mqtt://hub:***@broker failed, *** refused');
    expect(fourth).toMatchObject({ msg: 'wrapped', err: { message: 'inner ***' } });
    expect(fifth.stack).toBe('Error: at rediss://u:***@h:1 ***');
  });

  it('keeps the class name of a logged error in err.type', () => {
    const { logger, lines } = capture();
    logger.error(new TypeError('bad input'), 'Http');
    logger.error('wrapped', new RangeError('out of range'), 'Http');
    expect(lines().map((l) => l.err as { type: string; message: string })).toEqual([
      expect.objectContaining({ type: 'TypeError', message: 'bad input' }),
      expect.objectContaining({ type: 'RangeError', message: 'out of range' }),
    ]);
  });
});

describe('RateLimitedLog', () => {
  function harness(perWindow: number, windowMs: number) {
    let now = 1_000_000;
    const emitted: Array<[string, Record<string, unknown>]> = [];
    const log = new RateLimitedLog(
      (message, fields) => emitted.push([message, fields]),
      perWindow,
      windowMs,
      () => now,
    );
    return {
      log,
      emitted,
      advance: (ms: number) => {
        now += ms;
      },
    };
  }

  it('emits at most N lines per window, then one summary of how many were suppressed', () => {
    const { log, emitted, advance } = harness(3, 10_000);
    for (let i = 0; i < 10; i++) log.log(`rejected ${i}`, { i });
    expect(emitted).toEqual([
      ['rejected 0', { i: 0 }],
      ['rejected 1', { i: 1 }],
      ['rejected 2', { i: 2 }],
    ]);
    advance(9_999); // still the same window
    log.log('rejected 10', { i: 10 });
    expect(emitted).toHaveLength(3);

    advance(1); // the window is over: summary first, then the new line
    log.log('rejected 11', { i: 11 });
    expect(emitted.slice(3)).toEqual([
      ['suppressed 8 similar log lines', { suppressed: 8 }],
      ['rejected 11', { i: 11 }],
    ]);
  });

  it('starts a fresh quota every window and writes no summary when nothing was suppressed', () => {
    const { log, emitted, advance } = harness(2, 1_000);
    log.log('a');
    log.log('b');
    advance(1_000);
    log.log('c');
    log.log('d');
    log.log('e'); // suppressed
    advance(1_500);
    log.log('f');
    expect(emitted.map(([m]) => m)).toEqual(['a', 'b', 'c', 'd', 'suppressed 1 similar log lines', 'f']);
  });

  it('uses the default of 10 lines per 10 s window', () => {
    let now = 0;
    const emitted: string[] = [];
    const log = new RateLimitedLog(
      (m) => emitted.push(m),
      undefined,
      undefined,
      () => now,
    );
    for (let i = 0; i < 25; i++) log.log(`m${i}`);
    expect(emitted).toHaveLength(10);
    now = 9_999;
    log.log('late');
    expect(emitted).toHaveLength(10);
    now = 10_000;
    log.log('next');
    expect(emitted.slice(10)).toEqual(['suppressed 16 similar log lines', 'next']);
  });
});
