// DELETE /api/devices/:id removes the device's alarms and alarm evaluation
// state too; alarm_state is keyed (rule_id, device_id), so deleting one
// device's rows needs an index that starts with device_id.
import type { MigrationInterface, QueryRunner } from 'typeorm';

export class DeviceDeleteAlarms1732900000000 implements MigrationInterface {
  name = 'DeviceDeleteAlarms1732900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX alarm_state_device_idx ON alarm_state (device_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX alarm_state_device_idx`);
  }
}
