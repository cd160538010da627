// Argument validation of `npm run simulate`: defaults, accepted forms, and one
// clear message for everything else (the CLI turns it into exit code 2).
import { brokerSource, DEFAULT_OPTIONS, defaultBroker, maskUrl, parseSimulatorArgs } from './simulate-options';

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
      '--devices',
      '250',
      '--rate',
      '12.5',
      '--duration',
      '1.5',
      '--qos',
      '0',
      '--url',
      'mqtts://dev:secret@broker.example:8883',
      '--bad-ratio',
      '0.01',
      '--prefix',
      'plant-a.',
      '--seed',
      '99',
      '--max-inflight',
      '50',
      '--backfill',
      '10',
      '--silent',
      '0.1',
      '--silent-after',
      '5',
      '--silent-for',
      '400',
      '--will',
      '--will-devices',
      '20',
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

describe('the default broker follows the service', () => {
  it('is the embedded broker on MQTT_PORT, or MQTT_URL when the service uses an external broker', () => {
    expect(defaultBroker({})).toEqual({ url: 'mqtt://127.0.0.1:1883', source: 'default' });
    expect(defaultBroker({ MQTT_PORT: '1884' })).toEqual({ url: 'mqtt://127.0.0.1:1884', source: 'MQTT_PORT' });
    expect(defaultBroker({ MQTT_PORT: '1884', MQTT_URL: 'mqtts://u:p@broker:8883' })).toEqual({ url: 'mqtts://u:p@broker:8883', source: 'MQTT_URL' });
    // 0 asks the service for any free port: nothing to derive from it.
    expect(defaultBroker({ MQTT_PORT: '0' }).source).toBe('default');
  });

  it('logs in as the simulator of the compose stack when .env names its login', () => {
    const env = { MQTT_SIMULATOR_USER: 'simulator', MQTT_SIMULATOR_PASSWORD: 'p@ss word' };
    expect(defaultBroker(env)).toEqual({ url: 'mqtt://simulator:p%40ss%20word@127.0.0.1:1883', source: 'default, as MQTT_SIMULATOR_USER' });
    expect(defaultBroker({ ...env, MQTT_URL: 'mqtt://svc:pw@broker:1883' }).url).toBe('mqtt://simulator:p%40ss%20word@broker:1883');
    expect(defaultBroker({ MQTT_SIMULATOR_USER: 'simulator', MQTT_SIMULATOR_PASSWORD: '' }).url).toBe('mqtt://127.0.0.1:1883');
  });

  it('gives --url its default; --url still wins', () => {
    const fromEnv = parseSimulatorArgs([], { MQTT_PORT: '1884' });
    expect(fromEnv).toEqual({ kind: 'run', options: { ...DEFAULT_OPTIONS, url: 'mqtt://127.0.0.1:1884' } });
    expect(brokerSource([], { MQTT_PORT: '1884' })).toBe('MQTT_PORT');
    const flag = parseSimulatorArgs(['--url', 'mqtt://elsewhere:1883'], { MQTT_PORT: '1884' });
    expect(flag).toEqual({ kind: 'run', options: { ...DEFAULT_OPTIONS, url: 'mqtt://elsewhere:1883' } });
    expect(brokerSource(['--url=mqtt://elsewhere:1883'], { MQTT_PORT: '1884' })).toBe('--url');
  });

  it('names MQTT_URL when it cannot be used', () => {
    const outcome = parseSimulatorArgs([], { MQTT_URL: 'http://broker' });
    expect(outcome.kind).toBe('error');
    expect(outcome.kind === 'error' && outcome.message).toMatch(/^MQTT_URL is not a broker URL.*--url/);
  });
});
