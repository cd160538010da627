import { TelemetryEvents } from './telemetry-events';

const batch = { samples: [{ deviceId: 'd', metric: 'm', ts: 1, value: 2 }], devices: [] };

describe('TelemetryEvents', () => {
  it('delivers to every listener in subscription order', () => {
    const events = new TelemetryEvents();
    const seen: string[] = [];
    events.on('batch.committed', () => seen.push('a'));
    events.on('batch.committed', (b) => seen.push(`b:${b.samples.length}`));
    events.emit('batch.committed', batch);
    expect(seen).toEqual(['a', 'b:1']);
  });

  it('stops delivering once unsubscribed', () => {
    const events = new TelemetryEvents();
    const listener = jest.fn();
    const off = events.on('batch.committed', listener);
    off();
    events.emit('batch.committed', batch);
    expect(listener).not.toHaveBeenCalled();
    expect(events.listenerCount('batch.committed')).toBe(0);
  });

  it('reports a throwing listener and still reaches the next one', () => {
    const errors: unknown[] = [];
    const events = new TelemetryEvents((_event, error) => errors.push(error));
    const after = jest.fn();
    events.on('batch.committed', () => {
      throw new Error('boom');
    });
    events.on('batch.committed', after);
    events.emit('batch.committed', batch);
    expect(after).toHaveBeenCalledTimes(1);
    expect(String(errors[0])).toContain('boom');
  });
});
