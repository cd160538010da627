// Where an alarm change leaves the database: the webhook event is queued in
// the outbox inside the change's own transaction (so it exists exactly when
// the change does), and after the commit the `alarm` WebSocket event goes out
// once, from the instance that made the change, and the sender is woken.
import { Injectable } from '@nestjs/common';
import { FanoutService } from '../realtime/fanout.service';
import { type AlarmStore, type AlarmView, type Tx } from './alarm-store';
import { WebhookSender } from './webhook-sender';

export type AlarmChangeType = 'alarm.raised' | 'alarm.acknowledged' | 'alarm.cleared';

export interface AlarmChange {
  type: AlarmChangeType;
  alarm: AlarmView;
  /** The rule's webhook at the time of the change. */
  webhookUrl: string | undefined;
}

/** What a webhook receiver gets; acknowledgements are not sent (they come from the receiver's side). */
export function webhookBody(change: AlarmChange): string | undefined {
  if (change.type === 'alarm.acknowledged') return undefined;
  return JSON.stringify({ type: change.type, alarm: change.alarm });
}

@Injectable()
export class AlarmAnnouncer {
  constructor(
    private readonly fanout: FanoutService,
    private readonly sender: WebhookSender,
  ) {}

  /** Call inside the transaction that made the changes. */
  async enqueueWebhooks(tx: Tx, store: AlarmStore, changes: readonly AlarmChange[]): Promise<void> {
    const events: Array<{ url: string; body: string }> = [];
    for (const change of changes) {
      const body = webhookBody(change);
      if (change.webhookUrl && body) events.push({ url: change.webhookUrl, body });
    }
    await store.enqueue(tx, events);
  }

  /** Call after the commit. */
  announce(changes: readonly AlarmChange[]): void {
    let webhooks = false;
    for (const change of changes) {
      this.fanout.publishEvent(change.alarm.deviceId, 'alarm', change.alarm);
      if (change.webhookUrl && change.type !== 'alarm.acknowledged') webhooks = true;
    }
    if (webhooks) this.sender.nudge();
  }
}
