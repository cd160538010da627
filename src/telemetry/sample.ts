// The unit everything after parsing works with: one metric value of one
// device at one time, identified by (deviceId, metric, ts).

export interface Sample {
  deviceId: string;
  metric: string;
  /** Epoch milliseconds. */
  ts: number;
  value: number;
}

/** A device's first and last receive time within one batch (epoch ms). */
export interface DeviceSeen {
  deviceId: string;
  firstSeenMs: number;
  lastSeenMs: number;
}

/** metric name → newest committed point of one device */
export type LatestPoints = Record<string, { ts: number; value: number }>;
