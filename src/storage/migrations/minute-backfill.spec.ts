// The backfill of the minute tier runs in statements of bounded size: the
// chunking of device-days by their sample counts.
import { chunkDeviceDays } from './1732500000000-minute-aggregates';

const day = (d: number) => new Date(Date.UTC(2026, 10, d));
const iso = (d: number) => day(d).toISOString();

describe('chunkDeviceDays', () => {
  it('keeps every chunk within the limit, merging consecutive days of a device into one range', () => {
    const chunks = chunkDeviceDays(
      [
        { deviceId: 'a', day: day(1), samples: 40 },
        { deviceId: 'a', day: day(2), samples: 40 },
        { deviceId: 'a', day: day(4), samples: 10 },
        { deviceId: 'b', day: day(1), samples: 30 },
        { deviceId: 'b', day: day(2), samples: 5 },
      ],
      100,
    );
    expect(chunks).toEqual([
      { devices: ['a', 'a'], from: [iso(1), iso(4)], to: [iso(3), iso(5)] },
      { devices: ['b'], from: [iso(1)], to: [iso(3)] },
    ]);
  });

  it('gives a device-day larger than the limit a chunk of its own, and nothing for no data', () => {
    const chunks = chunkDeviceDays(
      [
        { deviceId: 'a', day: day(1), samples: 10 },
        { deviceId: 'a', day: day(2), samples: 500 },
        { deviceId: 'a', day: day(3), samples: 10 },
      ],
      100,
    );
    expect(chunks.map((c) => [c.from, c.to])).toEqual([
      [[iso(1)], [iso(2)]],
      [[iso(2)], [iso(3)]],
      [[iso(3)], [iso(4)]],
    ]);
    expect(chunkDeviceDays([], 100)).toEqual([]);
  });
});
