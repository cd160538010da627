/** What the bench sends each publisher process (scripts/bench-publisher.ts). */
export interface PublisherJob {
  url: string;
  count: number;
  devices: number;
  deviceOffset: number;
  window: number;
  baseTs: number;
  qos: 0 | 1;
  /** Messages per second; unset = as fast as the window allows. */
  rate?: number;
  /** Stamp each sample with the time it is published (for latency measurement). */
  stampNow?: boolean;
  /** Device ids are `${devicePrefix}${n}`; default `bench-`. */
  devicePrefix?: string;
}
