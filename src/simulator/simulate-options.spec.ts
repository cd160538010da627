// Argument validation of `npm run simulate`: defaults, accepted forms, and one
// clear message for everything else (the CLI turns it into exit code 2).
import { DEFAULT_OPTIONS, maskUrl, parseSimulatorArgs } from './simulate-options';

function error(argv: string[]): string {
  const outcome = parseSimulatorArgs(argv);
  if (outcome.kind !== 'error') throw new Error(`expected an error for ${argv.join(' ')}, got ${outcome.kind}`);
  return outcome.message;
}

describe('parseSimulatorArgs', () => {
  it('defaults target the embedded broker: 100 devices, 50 msg/s in total, 60 s, QoS 1', () => {
    expect(parseSimulatorArgs([])).toEqual({ kind: 'run', options: DEFAULT_OPTIONS });
    expect(DEFAULT_OPTIONS).toMatchObject({ devices: 100, rate: 50, duration: 60, qos: 1, url: 'mqtt://127.0.0.1:1883', badRatio: 0 });
  });

  it('reads every option', () => {
    const outcome = parseSimulatorArgs([
      '--devices', '250', '--rate', '12.5', '--duration', '1.5', '--qos', '0',
      '--url', 'mqtts://dev:secret@broker.example:8883', '--bad-ratio', '0.01',
      '--prefix', 'plant-a.', '--seed', '99', '--max-inflight', '50', '--backfill', '10',
      '--silent', '0.1', '--silent-after', '5', '--silent-for', '400', '--will', '--will-devices', '20',
    ]);
    expect(outcome).toEqual({
      kind: 'run',
      options: {
        devices: 250,
        rate: 12.5,
        duration: 1.5,
        qos: 0,
        url: 'mqtts://dev:secret@broker.example:8883',
        badRatio: 0.01,
        prefix: 'plant-a.',
        seed: 99,
        maxInflight: 50,
        backfill: 10,
        silent: 0.1,
        silentAfter: 5,
        silentFor: 400,
        will: true,
        willDevices: 20,
      },
    });
  });

  it('accepts --opt=value and ws:// broker URLs', () => {
    const outcome = parseSimulatorArgs(['--devices=3', '--url=ws://127.0.0.1:8080/mqtt']);
    expect(outcome).toMatchObject({ kind: 'run', options: { devices: 3, url: 'ws://127.0.0.1:8080/mqtt' } });
  });

  it.each([
    [['--devices', 'abc'], /--devices.*'abc'.*whole number from 1 to 100000/],
    [['--devices', '0'], /--devices.*whole number from 1/],
    [['--devices', '2.5'], /--devices.*whole number/],
    [['--devices', '-3'], /--devices/],
    [['--rate', '0'], /--rate.*greater than 0/],
    [['--rate', 'fast'], /--rate.*'fast'/],
    [['--rate', 'Infinity'], /--rate/],
    [['--duration', '-1'], /--duration/],
    [['--qos', '2'], /--qos.*'2'.*0, 1/],
    [['--bad-ratio', '1.5'], /--bad-ratio.*from 0 to 1/],
    [['--url', 'http://example.com'], /--url.*mqtt:\/\//],
    [['--url', 'not a url'], /--url.*broker URL/],
    [['--prefix', 'has space'], /--prefix.*Device ids must match/],
    [['--backfill', '-5'], /--backfill/],
    [['--devices'], /--devices.*argument missing/],
    [['--speed', '3'], /unknown option '--speed'/],
    [['extra'], /too many arguments/],
  ])('rejects %j with a clear message', (argv, pattern) => {
    const message = error(argv as string[]);
    expect(message).toMatch(pattern);
    expect(message).not.toMatch(/^error:/);
    expect(message.split('\n')).toHaveLength(1);
  });

  it('answers --help with the option list', () => {
    const outcome = parseSimulatorArgs(['--help']);
    expect(outcome.kind).toBe('help');
    if (outcome.kind === 'help') {
      expect(outcome.text).toMatch(/--rate <msgs>\s+messages per second in total/);
      for (const option of ['--devices', '--duration', '--qos', '--url', '--bad-ratio', '--backfill']) expect(outcome.text).toContain(option);
    }
  });
});

describe('maskUrl', () => {
  it('hides the password and keeps the rest', () => {
    expect(maskUrl('mqtt://dev:secret@broker:1883')).toBe('mqtt://dev:***@broker:1883');
    expect(maskUrl('mqtt://127.0.0.1:1883')).toBe('mqtt://127.0.0.1:1883');
  });
});
