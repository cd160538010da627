import type { MigrationInterface, QueryRunner } from 'typeorm';

// Threshold alarms: rules, the evaluation state of each rule × device, the
// alarms themselves and the webhook outbox. Times the evaluator works with
// (sample times) are epoch milliseconds, like the ingest path.
export class Alarms1732700000000 implements MigrationInterface {
  name = 'Alarms1732700000000';

  async up(q: QueryRunner): Promise<void> {
    // version: bumped on every change, so an evaluation started with an older
    // copy of the rule notices and skips it; spec holds the validated rule body.
    await q.query(`
      CREATE TABLE alarm_rules (
        id bigserial PRIMARY KEY,
        metric text NOT NULL,
        spec jsonb NOT NULL,
        version bigint NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    // One row: every instance polls it to learn that some rule changed.
    await q.query(`CREATE TABLE alarm_rules_version (id int PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)`);
    await q.query(`INSERT INTO alarm_rules_version (id, version) VALUES (1, 0)`);
    await q.query(`
      CREATE TABLE alarm_state (
        rule_id bigint NOT NULL,
        device_id text NOT NULL,
        last_ts bigint,
        hold_since bigint,
        clear_since bigint,
        open boolean NOT NULL DEFAULT false,
        PRIMARY KEY (rule_id, device_id)
      )`);
    await q.query(`
      CREATE TABLE alarms (
        id bigserial PRIMARY KEY,
        rule_id bigint NOT NULL,
        device_id text NOT NULL,
        metric text NOT NULL,
        severity text NOT NULL,
        status text NOT NULL CHECK (status IN ('active', 'acknowledged', 'cleared')),
        raised_at timestamptz NOT NULL,
        value double precision NOT NULL,
        acknowledged_at timestamptz,
        cleared_at timestamptz,
        clear_value double precision
      )`);
    await q.query(`CREATE UNIQUE INDEX alarms_one_open_idx ON alarms (rule_id, device_id) WHERE status <> 'cleared'`);
    await q.query(`CREATE INDEX alarms_newest_idx ON alarms (raised_at DESC, id DESC)`);
    await q.query(`CREATE INDEX alarms_device_idx ON alarms (device_id, raised_at DESC, id DESC)`);
    // body is the exact JSON sent (and signed), so every retry is byte-identical.
    await q.query(`
      CREATE TABLE alarm_outbox (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        seq bigserial NOT NULL,
        url text NOT NULL,
        body text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        attempts int NOT NULL DEFAULT 0,
        sent_at timestamptz,
        failed_at timestamptz,
        last_error text
      )`);
    await q.query(`CREATE INDEX alarm_outbox_due_idx ON alarm_outbox (next_attempt_at, seq) WHERE sent_at IS NULL AND failed_at IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE alarm_outbox`);
    await q.query(`DROP TABLE alarms`);
    await q.query(`DROP TABLE alarm_state`);
    await q.query(`DROP TABLE alarm_rules_version`);
    await q.query(`DROP TABLE alarm_rules`);
  }
}
