// A device-side MQTT client for tests: publishes and resolves once the broker
// (or embedded broker, after commit) has acknowledged.
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

export async function connectDevice(url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...options });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  return client;
}

export function telemetryTopic(deviceId: string): string {
  return `devices/${deviceId}/telemetry`;
}

export async function publishAll(client: MqttClient, messages: Array<{ topic: string; payload: string | Buffer }>, qos: 0 | 1 = 1): Promise<void> {
  await Promise.all(messages.map((m) => client.publishAsync(m.topic, m.payload, { qos })));
}
