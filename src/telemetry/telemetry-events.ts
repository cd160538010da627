// What happens to telemetry after it is accepted, as typed in-process events.
// The ingest path emits; the cache, the live fan-out and any later consumer
// subscribe in their own lifecycle hooks, so ingestion knows none of them.
import type { DeviceSeen, Sample } from './sample';

export interface TelemetryEventMap {
  /** A batch is committed in PostgreSQL and its messages acknowledged. */
  'batch.committed': {
    /** The samples this batch really stored (already-stored points left out). */
    samples: readonly Sample[];
    /** Every device with a message in the batch, stored samples or not. */
    devices: readonly DeviceSeen[];
  };
  /** Whether other instances share this one's Redis (heard on the fan-out channel lately). */
  'peers.changed': { present: boolean };
}

export type TelemetryEvent = keyof TelemetryEventMap;
export type Listener<K extends TelemetryEvent> = (payload: TelemetryEventMap[K]) => void;
export type Unsubscribe = () => void;

/**
 * Synchronous delivery in subscription order. A listener that throws is
 * reported through `onListenerError` and does not stop the others: an
 * emitter on the ingest path must never fail because a consumer did.
 */
export class TelemetryEvents {
  private readonly listeners = new Map<TelemetryEvent, Set<(payload: never) => void>>();

  constructor(private readonly onListenerError: (event: TelemetryEvent, error: unknown) => void = () => undefined) {}

  on<K extends TelemetryEvent>(event: K, listener: Listener<K>): Unsubscribe {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    const entry = listener as (payload: never) => void;
    set.add(entry);
    return () => {
      set.delete(entry);
    };
  }

  emit<K extends TelemetryEvent>(event: K, payload: TelemetryEventMap[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of set) {
      try {
        (listener as Listener<K>)(payload);
      } catch (error) {
        this.onListenerError(event, error);
      }
    }
  }

  listenerCount(event: TelemetryEvent): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}
