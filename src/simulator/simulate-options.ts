// Command-line options of `npm run simulate`, parsed with commander into either
// validated options, the help text, or one clear error message (the CLI exits
// with code 2 on an error). No process access here, so the spec can call it.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DEVICE_ID_PATTERN } from '../telemetry/telemetry-rules';

export interface SimulatorOptions {
  /** Number of simulated devices. */
  devices: number;
  /** Messages per second in total, over all devices (not per device). */
  rate: number;
  /** Seconds to run. */
  duration: number;
  qos: 0 | 1;
  /** Broker URL; credentials may be in it (`mqtt://user:pass@host:1883`). */
  url: string;
  /** Fraction of messages deliberately malformed, 0..1. */
  badRatio: number;
  /** Device ids are `<prefix>001`, `<prefix>002`, … */
  prefix: string;
  /** Seed for the signals (same seed, same curves). */
  seed: number;
  /** Unacknowledged QoS 1 messages allowed before publishing pauses. */
  maxInflight: number;
  /** Minutes of history to publish first (batches with past timestamps), 0 = none. */
  backfill: number;
  /** Fraction of devices that go silent once during the run, 0..1 (they come back afterwards). */
  silent: number;
  /** Seconds into the run when the silent devices stop. */
  silentAfter: number;
  /** Seconds they stay silent. */
  silentFor: number;
  /** Give devices their own connection with a Last Will `offline` on devices/<id>/status. */
  will: boolean;
  /** With --will: how many devices (the first ones) get such a connection; the rest share one. */
  willDevices: number;
}

export const DEFAULT_OPTIONS: SimulatorOptions = {
  devices: 100,
  rate: 50,
  duration: 60,
  qos: 1,
  url: 'mqtt://127.0.0.1:1883',
  badRatio: 0,
  prefix: 'sim-',
  seed: 1,
  maxInflight: 1000,
  backfill: 0,
  silent: 0,
  silentAfter: 10,
  silentFor: 30,
  will: false,
  willDevices: 100,
};

export type ParseOutcome = { kind: 'run'; options: SimulatorOptions } | { kind: 'help'; text: string } | { kind: 'error'; message: string };

const MQTT_PROTOCOLS = new Set(['mqtt:', 'mqtts:', 'tcp:', 'tls:', 'ssl:', 'ws:', 'wss:']);

/**
 * The variables the simulator reads: the service's, so it publishes where the
 * service listens, and the simulator's broker login of the compose stack.
 */
export type SimulatorEnv = Partial<Record<'MQTT_URL' | 'MQTT_PORT' | 'MQTT_SIMULATOR_USER' | 'MQTT_SIMULATOR_PASSWORD', string>>;

export interface BrokerDefault {
  url: string;
  /** Where the URL came from, for the start-up line. */
  source: string;
}

/**
 * The service's broker: MQTT_URL when the service uses an external one,
 * otherwise its embedded broker on MQTT_PORT (1883 unless set); logged in as
 * MQTT_SIMULATOR_USER when that and its password are set.
 */
export function defaultBroker(env: SimulatorEnv): BrokerDefault {
  let broker: BrokerDefault;
  if (env.MQTT_URL) {
    broker = { url: env.MQTT_URL, source: 'MQTT_URL' };
  } else {
    const port = env.MQTT_PORT && /^\d{1,5}$/.test(env.MQTT_PORT) ? Number(env.MQTT_PORT) : 0;
    broker = port > 0 && port <= 65535 ? { url: `mqtt://127.0.0.1:${port}`, source: 'MQTT_PORT' } : { url: DEFAULT_OPTIONS.url, source: 'default' };
  }
  if (!env.MQTT_SIMULATOR_USER || !env.MQTT_SIMULATOR_PASSWORD) return broker;
  try {
    const url = new URL(broker.url);
    url.username = encodeURIComponent(env.MQTT_SIMULATOR_USER);
    url.password = encodeURIComponent(env.MQTT_SIMULATOR_PASSWORD);
    return { url: url.toString().replace(/\/$/, ''), source: `${broker.source}, as MQTT_SIMULATOR_USER` };
  } catch {
    return broker; // an unusable MQTT_URL is reported by parseSimulatorArgs
  }
}

function wholeNumber(min: number, max: number) {
  return (value: string): number => {
    const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`Expected a whole number from ${min} to ${max}.`);
    }
    return n;
  };
}

function decimal(min: number, max: number, { exclusiveMin = false } = {}) {
  return (value: string): number => {
    const n = /^(\d+(\.\d*)?|\.\d+)$/.test(value.trim()) ? Number(value) : NaN;
    if (!Number.isFinite(n) || n > max || n < min || (exclusiveMin && n === min)) {
      throw new InvalidArgumentError(exclusiveMin ? `Expected a number greater than ${min} and at most ${max}.` : `Expected a number from ${min} to ${max}.`);
    }
    return n;
  };
}

function brokerUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('Expected a broker URL such as mqtt://127.0.0.1:1883.');
  }
  if (!MQTT_PROTOCOLS.has(url.protocol) || !url.hostname) {
    throw new InvalidArgumentError('Expected mqtt://, mqtts://, tcp://, tls://, ws:// or wss:// with a host, e.g. mqtt://127.0.0.1:1883.');
  }
  return value;
}

function devicePrefix(value: string): string {
  // The longest id is the prefix plus up to 6 digits; ids must match the contract.
  if (!DEVICE_ID_PATTERN.test(`${value}000000`)) {
    throw new InvalidArgumentError('Device ids must match [A-Za-z0-9_.:-]{1,64}: use letters, digits, _ . : - (at most 58).');
  }
  return value;
}

function buildCommand(output: { out: string; err: string }, broker: BrokerDefault): Command {
  const d = DEFAULT_OPTIONS;
  return new Command()
    .name('npm run simulate --')
    .description(
      'Publish realistic sensor telemetry (temperature, humidity, pressure, battery) from simulated devices ' +
        'to devices/<id>/telemetry: one message per reading, each reading four samples (metric values) at one time.',
    )
    .addOption(new Option('--devices <n>', 'number of simulated devices').default(d.devices).argParser(wholeNumber(1, 100_000)))
    .addOption(
      new Option('--rate <msgs>', 'messages per second in total, over all devices (each device reports every devices/rate s)')
        .default(d.rate)
        .argParser(decimal(0, 100_000, { exclusiveMin: true })),
    )
    .addOption(new Option('--duration <s>', 'seconds to run').default(d.duration).argParser(decimal(0, 7 * 86_400, { exclusiveMin: true })))
    .addOption(new Option('--qos <0|1>', 'MQTT QoS of every message').default(String(d.qos)).choices(['0', '1']))
    .addOption(
      new Option(
        '--url <url>',
        "broker URL, credentials allowed (mqtt://user:pass@host:1883); default: the service's broker (MQTT_URL, else MQTT_PORT on 127.0.0.1)",
      )
        .default(broker.url)
        .argParser(brokerUrl),
    )
    .addOption(
      new Option('--backfill <minutes>', 'first publish this many minutes of history per device, in batches (charts start full)')
        .default(d.backfill)
        .argParser(decimal(0, 24 * 60)),
    )
    .addOption(
      new Option('--bad-ratio <fraction>', 'fraction of messages sent malformed on purpose (0..1), to exercise rejection')
        .default(d.badRatio)
        .argParser(decimal(0, 1)),
    )
    .addOption(
      new Option('--silent <fraction>', 'fraction of devices (0..1) that go silent once, then come back (watch them go offline)')
        .default(d.silent)
        .argParser(decimal(0, 1)),
    )
    .addOption(new Option('--silent-after <s>', 'seconds into the run when they stop').default(d.silentAfter).argParser(decimal(0, 7 * 86_400)))
    .addOption(new Option('--silent-for <s>', 'seconds they stay silent').default(d.silentFor).argParser(decimal(0, 7 * 86_400, { exclusiveMin: true })))
    .addOption(
      new Option(
        '--will',
        'give devices their own connection carrying a Last Will "offline" on devices/<id>/status; a silent one is cut without DISCONNECT, so the broker publishes it',
      ).default(d.will),
    )
    .addOption(
      new Option('--will-devices <n>', 'with --will: how many devices (the first ones) get their own connection')
        .default(d.willDevices)
        .argParser(wholeNumber(1, 10_000)),
    )
    .addOption(new Option('--prefix <text>', 'device id prefix: ids are <prefix>001, <prefix>002, …').default(d.prefix).argParser(devicePrefix))
    .addOption(new Option('--seed <n>', 'seed of the signals: the same seed gives the same curves').default(d.seed).argParser(wholeNumber(0, 2 ** 32 - 1)))
    .addOption(
      new Option('--max-inflight <n>', 'QoS 1 messages awaiting PUBACK before publishing pauses').default(d.maxInflight).argParser(wholeNumber(1, 1_000_000)),
    )
    .helpOption('-h, --help', 'show this help')
    .allowExcessArguments(false)
    .exitOverride()
    .configureOutput({
      writeOut: (text) => {
        output.out += text;
      },
      writeErr: (text) => {
        output.err += text;
      },
      outputError: (text, write) => write(text),
    });
}

/** Where the broker URL of a run comes from: `--url`, or what defaultBroker() found. */
export function brokerSource(argv: readonly string[], env: SimulatorEnv): string {
  return argv.some((arg) => arg === '--url' || arg.startsWith('--url=')) ? '--url' : defaultBroker(env).source;
}

/**
 * Parses the user's arguments (without `node` and the script path); `env`
 * gives the default broker (the service's variables, .env included).
 */
export function parseSimulatorArgs(argv: readonly string[], env: SimulatorEnv = {}): ParseOutcome {
  const output = { out: '', err: '' };
  const broker = defaultBroker(env);
  if (brokerSource(argv, env) !== '--url') {
    try {
      brokerUrl(broker.url);
    } catch (error) {
      return { kind: 'error', message: `${broker.source} is not a broker URL the simulator can use: ${(error as Error).message} Pass --url.` };
    }
  }
  const command = buildCommand(output, broker);
  try {
    command.parse([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.help') {
        return { kind: 'help', text: output.out || command.helpInformation() };
      }
      const message = (output.err || error.message)
        .trim()
        .replace(/^error: /, '')
        .replace(/\s*\n\s*/g, ' ');
      return { kind: 'error', message };
    }
    throw error;
  }
  // commander parses every option to its SimulatorOptions type except --qos, which stays a string.
  const { qos, ...rest } = command.opts<Omit<SimulatorOptions, 'qos'> & { qos: string }>();
  return { kind: 'run', options: { ...rest, qos: qos === '0' ? 0 : 1 } };
}

/** The broker URL with any password replaced, for output. */
export function maskUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    return url.toString().replace(/\/$/, '');
  } catch {
    return value;
  }
}
