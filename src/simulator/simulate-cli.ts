// `npm run simulate -- [options]`: publishes simulated device telemetry with a
// live progress line on stderr and a summary on stdout. Exit codes: 0 all sent
// (and, with QoS 1, acknowledged); 1 connection failure, publish errors or
// unacknowledged messages; 2 invalid arguments; 130 interrupted (Ctrl-C).
import { Presets, SingleBar } from 'cli-progress';
import { loadEnvFile } from '../config/env-file';
import { brokerSource, maskUrl, parseSimulatorArgs, type SimulatorEnv, type SimulatorOptions } from './simulate-options';
import { METRICS_PER_READING } from './device-signals';
import { emptyProgress, runSimulation, SimulationError, type SimulationProgress, type SimulationSummary } from './simulation';

const number = new Intl.NumberFormat('en-US');
const fixed = (value: number, digits = 1) => value.toFixed(digits);

function progressPayload(p: SimulationProgress, qos: 0 | 1) {
  return {
    elapsed: fixed(p.elapsedMs / 1000),
    sent: number.format(p.sent),
    acked: qos === 1 ? number.format(p.acked) : '-',
    errors: number.format(p.errors),
    rate: fixed(p.ratePerSec),
    status: p.connected ? '' : ' | reconnecting…',
  };
}

export function formatSummary(s: SimulationSummary, options: SimulatorOptions): string {
  const lines = [
    `${s.interrupted ? 'Interrupted:' : 'Simulated'} ${number.format(s.devices)} devices for ${fixed(s.elapsedMs / 1000)} s → ${s.url}, QoS ${s.qos}`,
    `  sent          ${number.format(s.sent)} messages (${fixed(s.averageRatePerSec)} msg/s on average; target ${options.rate})`,
    `  samples       ${number.format((s.sent - s.bad) * METRICS_PER_READING)} metric values in the valid messages (${METRICS_PER_READING} per reading)`,
    `  acknowledged  ${s.qos === 1 ? number.format(s.acked) : '- (QoS 0 has no acknowledgement)'}`,
    `  errors        ${number.format(s.errors)}`,
  ];
  if (s.disconnects > 0) lines.push(`  disconnects   ${number.format(s.disconnects)} (unacknowledged messages were resent after reconnecting)`);
  if (s.unacknowledged > 0) lines.push(`  unacknowledged ${number.format(s.unacknowledged)} (gave up waiting)`);
  if (s.bad > 0) lines.push(`  malformed     ${number.format(s.bad)} sent on purpose (--bad-ratio ${options.badRatio})`);
  lines.push(`  skipped       ${number.format(s.skipped)} turns of devices in a gap`);
  if (options.silent > 0) lines.push(`  silenced      ${number.format(s.silenced)} turns of silenced devices (--silent ${options.silent})`);
  if (options.will)
    lines.push(
      `  killed        ${number.format(s.killed)} device connections cut without DISCONNECT (their Last Will went out), ${number.format(s.lostInCrash)} messages lost with them`,
    );
  if (s.backfilled > 0) {
    lines.push(
      `  backfilled    ${number.format(s.backfilled)} history readings, ${number.format(s.backfilled * METRICS_PER_READING)} samples (--backfill ${options.backfill} min)`,
    );
  }
  if (s.ackLatencyMs) {
    const l = s.ackLatencyMs;
    const ms = (value: number) => `${number.format(Math.round(value))} ms`;
    lines.push(`  ack latency   p50 ${ms(l.p50)} · p95 ${ms(l.p95)} · max ${ms(l.max)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function exitCodeOf(summary: SimulationSummary): number {
  if (summary.interrupted) return 130;
  return summary.errors > 0 || summary.unacknowledged > 0 ? 1 : 0;
}

/** How the start-up line explains where the broker URL came from. */
function describeSource(source: string, fromEnvFile: readonly string[]): string {
  if (source === '--url') return '--url';
  if (source === 'default') return "the embedded broker's default port; pass --url or set MQTT_PORT if the service listens elsewhere";
  if (source.startsWith('default,')) return `the embedded broker's default port, logged in ${source.slice('default, '.length)}; --url to change`;
  const names = source.match(/[A-Z][A-Z_]+/g) ?? [];
  const inFile = names.length > 0 && names.every((name) => fromEnvFile.includes(name));
  return `${source.startsWith('default') ? 'the default' : 'from'} ${source}${inFile ? ' in .env' : ''}; --url to change`;
}

export async function main(
  argv: readonly string[] = process.argv.slice(2),
  env: SimulatorEnv = process.env,
  fromEnvFile: readonly string[] = [],
): Promise<number> {
  const parsed = parseSimulatorArgs(argv, env);
  if (parsed.kind === 'help') {
    process.stdout.write(parsed.text);
    return 0;
  }
  if (parsed.kind === 'error') {
    process.stderr.write(`simulate: ${parsed.message}\nRun \`npm run simulate -- --help\` for the options.\n`);
    return 2;
  }
  const options = parsed.options;
  const perDevice = options.devices / options.rate;
  process.stderr.write(
    `simulate: publishing to ${maskUrl(options.url)} (${describeSource(brokerSource(argv, env), fromEnvFile)})\n` +
      `simulate: ${number.format(options.devices)} devices, ${options.rate} msg/s in total ` +
      `(each device every ${perDevice < 10 ? fixed(perDevice, 2) : fixed(perDevice)} s), QoS ${options.qos}, for ${options.duration} s` +
      `${options.backfill > 0 ? `, after ${options.backfill} min of history` : ''}\n`,
  );

  const bar = new SingleBar(
    {
      format: ' {bar} {elapsed}/{total} s | sent {sent} | acked {acked} | errors {errors} | {rate} msg/s{status}',
      stream: process.stderr,
      barsize: 24,
      hideCursor: true,
      noTTYOutput: true,
      notTTYSchedule: 5000,
    },
    Presets.shades_classic,
  );
  const controller = new AbortController();
  const stop = () => {
    if (controller.signal.aborted) process.exit(130); // second Ctrl-C: leave now
    controller.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const empty = emptyProgress();
  let summary: SimulationSummary;
  try {
    summary = await runSimulation(options, {
      signal: controller.signal,
      onStart: () => bar.start(options.duration, 0, progressPayload(empty, options.qos)),
      onProgress: (p) => bar.update(Math.min(options.duration, p.elapsedMs / 1000), progressPayload(p, options.qos)),
    });
  } catch (error) {
    bar.stop();
    if (error instanceof SimulationError) {
      process.stderr.write(`simulate: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  bar.update(summary.interrupted ? summary.elapsedMs / 1000 : options.duration, progressPayload(summary, options.qos));
  bar.stop();
  process.stdout.write(formatSummary(summary, options));
  return exitCodeOf(summary);
}

if (require.main === module) {
  // The service's .env, so the simulator publishes to the broker the service uses.
  const { applied } = loadEnvFile('.env');
  main(process.argv.slice(2), process.env, applied).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`simulate: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = 1;
    },
  );
}
