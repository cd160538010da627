// A device fleet in its own process for the benchmark: publishes `count`
// QoS 1 messages (4 metrics each) round-robin over `devices` devices, keeping
// at most `window` publishes un-acknowledged, then reports over IPC.
import mqtt from 'mqtt';
import type { PublisherJob } from './publisher-job';

async function run(job: PublisherJob): Promise<void> {
  const client = await mqtt.connectAsync(job.url, { protocolVersion: 4, reconnectPeriod: 1000, clean: true });
  let sent = 0;
  let acked = 0;
  const started = Date.now();
  await new Promise<void>((resolve) => {
    const pump = () => {
      const allowed = job.rate ? Math.floor(((Date.now() - started) / 1000) * job.rate) : Infinity;
      while (sent < job.count && sent - acked < job.window && sent < allowed) {
        const i = sent++;
        const device = job.deviceOffset + (i % job.devices);
        const ts = job.stampNow ? Date.now() : job.baseTs + Math.floor(i / job.devices) * 1000;
        const payload = `{"ts":${ts},"metrics":{"temperature":${(20 + (i % 50) / 10).toFixed(1)},"humidity":${40 + (i % 20)},"pressure":${1000 + (i % 30)},"battery":${(i % 100) / 100}}}`;
        client.publish(`devices/${job.devicePrefix ?? 'bench-'}${device}/telemetry`, payload, { qos: job.qos }, () => {
          acked++;
          if (acked === job.count) resolve();
          else pump();
        });
      }
    };
    pump();
    if (job.rate) {
      const ticker = setInterval(() => {
        if (sent >= job.count) clearInterval(ticker);
        else pump();
      }, 5);
    }
  });
  const seconds = (Date.now() - started) / 1000;
  await client.endAsync();
  process.send?.({ sent, acked, seconds });
}

process.once('message', (job: PublisherJob) => {
  run(job).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`publisher failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
});
