-- Rollback of 0004: no change feed; the encounters lose their feed position (changed_xid).
-- Locks: ACCESS EXCLUSIVE on encounter for milliseconds (DROP COLUMN only marks the column
-- dropped; DROP INDEX and DROP TRIGGER are catalog changes).
-- The encounters_api functions whose bodies select e.* depend on every column of encounter, so
-- the column is dropped with CASCADE, which drops them too; `encounters-service migrate rollback`
-- re-applies sql/functions afterwards, as `migrate upgrade` does.
-- Lint: dropping the derived column and its trigger function (no client calls it) is the point
-- of this rollback; no data is lost. The index is dropped in the rollback's transaction, so not
-- CONCURRENTLY.
-- squawk-ignore-file ban-drop-column, ban-drop-function, require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TRIGGER encounter_track_change ON encounters.encounter;
DROP FUNCTION encounters.track_encounter_change();
DROP INDEX encounters.encounter_change_idx;
ALTER TABLE encounters.encounter DROP COLUMN changed_xid CASCADE;
