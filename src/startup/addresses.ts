// What a user needs once the service is up: where the page, the API, its
// documentation, the metrics and the MQTT broker are. Logged once at start-up.
import type { AppConfig } from '../config/app-config';
import { maskUrl } from './startup-problem';

export interface ServiceAddresses {
  page: string;
  api: string;
  docs: string;
  metrics: string;
  websocket: string;
  mqtt: string;
}

/** `httpPort` / `mqttPort` are the ports actually bound (they differ from the config when it says 0). */
export function serviceAddresses(config: AppConfig, httpPort: number, mqttPort: number | undefined): ServiceAddresses {
  const http = `http://localhost:${httpPort}`;
  return {
    page: `${http}/`,
    api: `${http}/api/devices`,
    docs: `${http}/docs`,
    metrics: `${http}/metrics`,
    websocket: `ws://localhost:${httpPort}/ws`,
    mqtt: config.mqtt.url ? `${maskUrl(config.mqtt.url)} (external broker)` : `mqtt://localhost:${mqttPort ?? config.mqtt.embeddedPort} (embedded broker)`,
  };
}
