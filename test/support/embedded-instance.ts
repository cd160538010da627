// One in-process app instance with its embedded broker and a device connected
// to that broker: the unit the scale-out tests (several instances sharing
// PostgreSQL and Redis) start and stop.
import type { MqttClient } from 'mqtt';
import { EmbeddedBroker } from '../../src/broker/embedded-broker';
import { connectDevice } from './publisher';
import { startTestApp, type TestApp } from './test-app';

export interface EmbeddedInstance {
  app: TestApp;
  wsUrl: string;
  device: MqttClient;
}

/** `env` is the app's environment; the embedded broker listens on a free port. */
export async function startEmbeddedInstance(env: Record<string, string | undefined>, deviceClientId: string): Promise<EmbeddedInstance> {
  const app = await startTestApp({ MQTT_URL: undefined, MQTT_PORT: '0', WS_TOKEN: undefined, ...env });
  const port = app.get(EmbeddedBroker).port;
  if (!port) {
    await app.close();
    throw new Error('embedded broker is not listening');
  }
  const device = await connectDevice(`mqtt://127.0.0.1:${port}`, { clientId: deviceClientId });
  return { app, wsUrl: `${app.baseUrl.replace('http', 'ws')}/ws`, device };
}

export async function stopEmbeddedInstance(instance: EmbeddedInstance | undefined): Promise<void> {
  if (!instance) return;
  await instance.device.endAsync().catch(() => undefined);
  await instance.app.close().catch(() => undefined);
}
