// The answer of `GET /api/devices/:id/series` for minute and hour intervals,
// computed from raw samples, for browser tests that need it from a server
// without that route. Columnar, buckets aligned on the zone's clock and
// ascending, a bucket listed when its start is in [from, to); fill=null lists
// empty buckets with count 0 and null elsewhere.

export interface RawSample {
  ts: string;
  metric: string;
  value: number;
}

export interface SeriesColumns {
  t: string[];
  count: number[];
  min: Array<number | null>;
  max: Array<number | null>;
  avg: Array<number | null>;
}

export interface SeriesAnswer {
  deviceId: string;
  interval: string;
  tz: string;
  from: string;
  to: string;
  series: Record<string, SeriesColumns>;
}

/** Length of an `Nm` / `Nh` interval in ms (the fixed-length ones; days, weeks and months are not). */
export function intervalMs(interval: string): number {
  const match = /^(\d+)(m|h)$/.exec(interval);
  if (!match) throw new Error(`interval ${interval} is not Nm or Nh`);
  return Number(match[1]) * (match[2] === 'm' ? 60_000 : 3_600_000);
}

/** The zone's offset from UTC at instant t, in ms (Asia/Kolkata: +5 h 30). */
export function zoneOffsetMs(timeZone: string, t: number): number {
  const name = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' }).formatToParts(t).find((p) => p.type === 'timeZoneName')?.value;
  const match = /GMT([+-])(\d\d):(\d\d)/.exec(name ?? '');
  if (!match) return 0; // "GMT": UTC itself
  return (match[1] === '-' ? -1 : 1) * (Number(match[2]) * 60 + Number(match[3])) * 60_000;
}

/** Start of the bucket holding t, on the zone's clock. */
export function bucketStart(t: number, stepMs: number, timeZone: string): number {
  const offset = zoneOffsetMs(timeZone, t);
  return Math.floor((t + offset) / stepMs) * stepMs - offset;
}

export function seriesAnswer(deviceId: string, samples: RawSample[], query: { from: string; to: string; interval: string; tz: string }): SeriesAnswer {
  const step = intervalMs(query.interval);
  const from = Date.parse(query.from);
  const to = Date.parse(query.to);
  let first = bucketStart(from, step, query.tz);
  if (first < from) first += step;
  const starts: number[] = [];
  for (let b = first; b < to; b += step) starts.push(b);
  const index = new Map(starts.map((b, i) => [b, i]));

  const series: Record<string, SeriesColumns> = {};
  const sums: Record<string, number[]> = {};
  for (const { ts, metric, value } of samples) {
    const i = index.get(bucketStart(Date.parse(ts), step, query.tz));
    if (i === undefined) continue;
    if (!series[metric]) {
      series[metric] = {
        t: starts.map((b) => new Date(b).toISOString()),
        count: starts.map(() => 0),
        min: starts.map(() => null),
        max: starts.map(() => null),
        avg: starts.map(() => null),
      };
      sums[metric] = starts.map(() => 0);
    }
    const s = series[metric];
    s.count[i]++;
    sums[metric][i] += value;
    s.min[i] = Math.min(s.min[i] ?? value, value);
    s.max[i] = Math.max(s.max[i] ?? value, value);
    s.avg[i] = sums[metric][i] / s.count[i];
  }
  return { deviceId, interval: query.interval, tz: query.tz, from: new Date(from).toISOString(), to: new Date(to).toISOString(), series };
}
