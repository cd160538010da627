import type { MigrationInterface, QueryRunner } from 'typeorm';

// Device online/offline status lives on the devices row (one conditional
// UPDATE makes a change, so only one instance ever makes and announces it),
// its changes in device_status_history. The partial indexes hold only online
// devices, so the once-a-second sweep reads just the devices whose deadline
// (last_seen + timeout) has passed: devices on the default timeout by
// last_seen, the few with their own timeout all together.
// A row the batch write inserts is online from the start (a device exists
// because a message of it was accepted); the commit hook then gives it its
// since, history row and announcement. Devices that existed before this
// migration start online since their last message; the first sweep then turns the silent ones offline at last_seen +
// timeout, as if the service had been watching all along.
export class DeviceStatus1732600000000 implements MigrationInterface {
  name = 'DeviceStatus1732600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE devices
        ADD COLUMN status text NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'offline')),
        ADD COLUMN status_since timestamptz,
        ADD COLUMN status_reason text CHECK (status_reason IN ('message', 'timeout', 'will')),
        ADD COLUMN offline_after_s integer CHECK (offline_after_s > 0)`);
    await q.query(`UPDATE devices SET status = 'online', status_since = last_seen, status_reason = 'message'`);
    await q.query(`CREATE INDEX devices_online_default_idx ON devices (last_seen) WHERE status = 'online' AND offline_after_s IS NULL`);
    await q.query(`CREATE INDEX devices_online_override_idx ON devices (last_seen) WHERE status = 'online' AND offline_after_s IS NOT NULL`);
    await q.query(`CREATE INDEX devices_status_idx ON devices (status, id)`);
    await q.query(`
      CREATE TABLE device_status_history (
        device_id text COLLATE "C" NOT NULL,
        since timestamptz NOT NULL,
        status text NOT NULL CHECK (status IN ('online', 'offline')),
        reason text NOT NULL CHECK (reason IN ('message', 'timeout', 'will'))
      )`);
    await q.query(`CREATE INDEX device_status_history_device_idx ON device_status_history (device_id, since DESC)`);
    await q.query(`CREATE INDEX device_status_history_since_idx ON device_status_history (since)`);
    await q.query(`
      INSERT INTO device_status_history (device_id, since, status, reason)
      SELECT id, status_since, status, status_reason FROM devices`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE device_status_history`);
    await q.query(`DROP INDEX devices_status_idx`);
    await q.query(`DROP INDEX devices_online_override_idx`);
    await q.query(`DROP INDEX devices_online_default_idx`);
    await q.query(`ALTER TABLE devices DROP COLUMN offline_after_s, DROP COLUMN status_reason, DROP COLUMN status_since, DROP COLUMN status`);
  }
}
