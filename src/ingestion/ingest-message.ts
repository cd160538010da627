/** One telemetry message as it leaves a source (MQTT client or embedded broker). */
export interface IngestMessage {
  topic: string;
  payload: Buffer;
  receivedAtMs: number;
  /**
   * Called once, after the message's samples are committed (or once it is
   * rejected as bad input). For QoS 1 this sends the PUBACK; never calling it
   * leaves the message with the broker/device for redelivery.
   */
  ack: () => void;
}

/** Where messages come from; IngestionService starts and stops one. */
export interface MessageSource {
  readonly name: string;
  start(): Promise<void>;
  /** Stop taking new messages; messages already handed over may still be acked. */
  pause(): Promise<void>;
  /** Disconnect; un-acked messages stay with the broker. */
  stop(): Promise<void>;
  readonly connected: boolean;
}

/** A message on devices/{id}/status (device status, typically its Last Will); handled apart from telemetry. */
export type StatusMessageHandler = (topic: string, payload: Buffer, receivedAtMs: number) => void;
