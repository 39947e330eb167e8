-- Rollback of 0006: no encounter history; the versions kept are lost.
-- Locks: ACCESS EXCLUSIVE on encounter_history (no caller uses it afterwards) and SHARE ROW
-- EXCLUSIVE on encounter, for milliseconds.
-- Lint: dropping the history (its data goes with it) is the point of this rollback.
-- squawk-ignore-file ban-drop-table, ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TRIGGER encounter_keep_version ON encounters.encounter;
DROP FUNCTION encounters.keep_encounter_version();
DROP TABLE encounters.encounter_history;
