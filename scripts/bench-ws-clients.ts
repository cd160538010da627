// WebSocket clients for the benchmark, in their own process so that parsing
// every frame does not delay the measurement in the bench process. Each of
// `clients` connections subscribes to its share of the devices; the latency
// of a sample is its receive time minus the publish time stamped in its ts.
import WebSocket from 'ws';

interface Job {
  url: string;
  clients: number;
  devices: number;
  /** Device ids are `${devicePrefix}${n}`; default `bench-`. */
  devicePrefix?: string;
}

const latencies: number[] = [];
const sockets: WebSocket[] = [];

async function start(job: Job): Promise<void> {
  for (let c = 0; c < job.clients; c++) {
    const ws = new WebSocket(job.url);
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.on('message', (raw: Buffer) => {
      const now = Date.now();
      const msg = JSON.parse(raw.toString()) as { event: string; data: { ts: string } };
      if (msg.event === 'sample') latencies.push(now - Date.parse(msg.data.ts));
    });
    for (let d = c; d < job.devices; d += job.clients)
      ws.send(JSON.stringify({ event: 'subscribe', data: { deviceId: `${job.devicePrefix ?? 'bench-'}${d}` } }));
    sockets.push(ws);
  }
  process.send?.({ ready: true });
}

process.on('message', (m: { job?: Job; stop?: boolean; report?: boolean }) => {
  if (m.job) {
    start(m.job).catch((error: unknown) => {
      process.stderr.write(`ws clients failed: ${String(error)}\n`);
      process.exit(1);
    });
  } else if (m.report) {
    // Latencies since the previous report (the soak prints them per interval),
    // forgotten once reported so hours of samples do not pile up here.
    const window = latencies.splice(0, latencies.length).sort((a, b) => a - b);
    const at = (q: number) => window[Math.min(window.length - 1, Math.floor(q * window.length))] ?? NaN;
    const open = sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length;
    process.send?.({ report: { delivered: window.length, p50Ms: at(0.5), p99Ms: at(0.99), open } });
  } else if (m.stop) {
    for (const ws of sockets) ws.terminate();
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    process.send?.({ delivered: latencies.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: latencies[latencies.length - 1] ?? NaN }, () => process.exit(0));
  }
});
