import mqtt from 'mqtt';

/**
 * Deletes a persistent MQTT session. A leftover session of an instance that no
 * longer runs would keep receiving its share of the shared subscription, so
 * tests on the shared broker clear theirs before and after.
 */
export async function clearSession(url: string, clientId: string): Promise<void> {
  const client = await mqtt.connectAsync(url, {
    clientId,
    clean: true,
    protocolVersion: 5,
    properties: { sessionExpiryInterval: 0 },
    reconnectPeriod: 0,
  });
  await client.endAsync();
}
