// The port checks see what the listeners would run into, and the ready line
// gives the addresses a user needs, with the broker's password masked.
import { createServer, type Server } from 'node:net';
import { loadConfig } from '../config/load-config';
import { serviceAddresses } from './addresses';
import { checkPorts } from './preflight';

function listen(host: string): Promise<{ server: Server; port: number }> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, host, () => resolve({ server, port: (server.address() as { port: number }).port }));
  });
}

describe('checkPorts', () => {
  it('reports an embedded-broker port held on loopback only, with both ways out', async () => {
    const { server, port } = await listen('127.0.0.1');
    try {
      const problems = await checkPorts(loadConfig({ PORT: '0', MQTT_PORT: String(port) }), '0.0.0.0');
      expect(problems.map((p) => p.message)).toEqual([
        expect.stringMatching(new RegExp(`^MQTT_PORT ${port} is already in use.*MQTT_PORT=<free port>.*MQTT_URL=mqtt://127\\.0\\.0\\.1:${port} `)),
      ]);
      // With an external broker the embedded one never listens: nothing to report.
      expect(await checkPorts(loadConfig({ PORT: '0', MQTT_PORT: String(port), MQTT_URL: 'mqtt://broker:1883' }), '0.0.0.0')).toEqual([]);
    } finally {
      server.close();
    }
  });

  it('reports a busy PORT, and PORT equal to MQTT_PORT', async () => {
    const { server, port } = await listen('0.0.0.0');
    try {
      const busy = await checkPorts(loadConfig({ PORT: String(port), MQTT_PORT: '0' }), '0.0.0.0');
      expect(busy.map((p) => p.message)).toEqual([expect.stringMatching(new RegExp(`^PORT ${port} is already in use`))]);
    } finally {
      server.close();
    }
    const same = await checkPorts(loadConfig({ PORT: '4567', MQTT_PORT: '4567' }), '0.0.0.0');
    expect(same.map((p) => p.message)).toEqual(['PORT and MQTT_PORT are both 4567: the HTTP API and the embedded broker need a port each']);
  });

  it('has nothing to say about ports chosen at listen time (0)', async () => {
    expect(await checkPorts(loadConfig({ PORT: '0', MQTT_PORT: '0' }), '0.0.0.0')).toEqual([]);
  });
});

describe('serviceAddresses', () => {
  it('lists page, API, docs, metrics, WebSocket and MQTT on the bound ports', () => {
    expect(serviceAddresses(loadConfig({}), 3001, 1884)).toEqual({
      page: 'http://localhost:3001/',
      api: 'http://localhost:3001/api/devices',
      docs: 'http://localhost:3001/docs',
      metrics: 'http://localhost:3001/metrics',
      websocket: 'ws://localhost:3001/ws',
      mqtt: 'mqtt://localhost:1884 (embedded broker)',
    });
    expect(serviceAddresses(loadConfig({ MQTT_URL: 'mqtt://hub:S3cret@broker:1883' }), 3000, undefined).mqtt).toBe(
      'mqtt://hub:***@broker:1883 (external broker)',
    );
  });
});
