-- Rollback of 0007: merges can no longer be undone; the undos recorded are lost (the encounters
-- stay where the undos put them), and so is where each merge moved its encounters.
-- Locks: ACCESS EXCLUSIVE on merge_undo (no caller uses it afterwards) and on merge_history, for
-- milliseconds.
-- Lint: dropping what 0007 added (its data goes with it) is the point of this rollback. The index
-- is dropped in the rollback's transaction, so not CONCURRENTLY.
-- squawk-ignore-file ban-drop-table, ban-drop-column, require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TABLE encounters.merge_undo;
DROP INDEX encounters.merge_history_message_idx;
ALTER TABLE encounters.merge_history DROP COLUMN parent_record_uuid;
ALTER TABLE encounters.merge_history DROP COLUMN parent_patient_uuid;
