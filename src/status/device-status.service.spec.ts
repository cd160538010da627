// The online check after a commit: which batches cost a statement, and when a
// belief that a device is online must not be trusted.
import type { AppConfig } from '../config/app-config';
import type { FanoutService } from '../realtime/fanout.service';
import type { StatusEvent } from '../realtime/ws-protocol';
import type { DeviceSeen } from '../telemetry/sample';
import { TelemetryEvents } from '../telemetry/telemetry-events';
import type { DeviceStatusMetrics } from './device-status-metrics';
import { DeviceStatusService } from './device-status.service';
import type { DeviceStatusStore, OnlineCheck, StatusChange } from './device-status.store';

const flush = () => new Promise((resolve) => setImmediate(resolve));

function setup() {
  const asked: string[][] = [];
  const state = new Map<string, 'online' | 'offline'>();
  const store = {
    markOnline: jest.fn(async (devices: readonly DeviceSeen[]) => {
      asked.push(devices.map((d) => d.deviceId));
      const changes: StatusChange[] = [];
      const checks: OnlineCheck[] = [];
      for (const d of devices) {
        if (state.get(d.deviceId) !== 'online')
          changes.push({ deviceId: d.deviceId, status: 'online', since: new Date(d.firstSeenMs).toISOString(), reason: 'message' });
        state.set(d.deviceId, 'online');
        checks.push({ deviceId: d.deviceId, status: 'online', offlineAfterS: null });
      }
      return { changes, checks };
    }),
  } as unknown as DeviceStatusStore;
  const statusListeners: Array<(e: StatusEvent) => void> = [];
  const fanout = {
    hearsOthers: true,
    subscriptionEpoch: 1,
    onStatus: (listener: (e: StatusEvent) => void) => statusListeners.push(listener),
    publishStatus: jest.fn(),
  };
  const metrics = { changes: { labels: () => ({ inc: () => undefined }) } } as unknown as DeviceStatusMetrics;
  const config = { deviceOfflineAfterS: 60 } as AppConfig;
  const service = new DeviceStatusService(config, store, fanout as unknown as FanoutService, metrics, new TelemetryEvents());
  service.onModuleInit();
  const seen = (deviceId: string, at = Date.now()): DeviceSeen => ({ deviceId, firstSeenMs: at, lastSeenMs: at });
  const remoteStatus = (event: StatusEvent) => statusListeners.forEach((l) => l(event));
  return { service, asked, fanout, seen, remoteStatus };
}

describe('DeviceStatusService online check', () => {
  it('asks once per batch for the devices not known online, and not at all when all are', async () => {
    const { service, asked, fanout, seen } = setup();
    service.committed([seen('a'), seen('b')]);
    await flush();
    service.committed([seen('a'), seen('b')]);
    service.committed([seen('b'), seen('c')]);
    await flush();
    expect(asked).toEqual([['a', 'b'], ['c']]);
    expect(fanout.publishStatus).toHaveBeenCalledTimes(3);
  });

  it('asks again once a device could have timed out since it was last seen here', async () => {
    const { service, asked, seen } = setup();
    const old = Date.now() - 60_000; // timeout 60 s: its deadline is now
    service.committed([seen('a', old)]);
    await flush();
    service.committed([seen('a')]);
    await flush();
    expect(asked).toEqual([['a'], ['a']]);
  });

  it('asks again after an offline announcement from anywhere', async () => {
    const { service, asked, seen, remoteStatus } = setup();
    service.committed([seen('a'), seen('b')]);
    await flush();
    remoteStatus({ deviceId: 'a', status: 'offline', since: new Date().toISOString(), reason: 'will' });
    service.committed([seen('a'), seen('b')]);
    await flush();
    expect(asked).toEqual([['a', 'b'], ['a']]);
  });

  it('trusts nothing while the cross-instance channel is down, and forgets everything when it is re-made', async () => {
    const { service, asked, fanout, seen } = setup();
    service.committed([seen('a')]);
    await flush();
    fanout.hearsOthers = false;
    service.committed([seen('a')]);
    await flush();
    fanout.hearsOthers = true;
    fanout.subscriptionEpoch = 2;
    service.committed([seen('a')]);
    await flush();
    service.committed([seen('a')]);
    await flush();
    expect(asked).toEqual([['a'], ['a'], ['a']]);
  });

  it('re-checks a message that trusted the belief just before an offline announcement arrived', async () => {
    const { service, asked, seen, remoteStatus } = setup();
    const t0 = Date.now();
    service.committed([seen('a', t0)]);
    await flush();
    service.committed([seen('a', t0 + 50)]); // skipped: believed online
    remoteStatus({ deviceId: 'a', status: 'offline', since: new Date(t0 + 20).toISOString(), reason: 'will' });
    await flush();
    // A message received before the device went offline is not re-checked.
    service.committed([seen('b', t0)]);
    await flush();
    service.committed([seen('b', t0 + 10)]);
    remoteStatus({ deviceId: 'b', status: 'offline', since: new Date(t0 + 20).toISOString(), reason: 'will' });
    await flush();
    expect(asked).toEqual([['a'], ['a'], ['b']]);
  });
});
