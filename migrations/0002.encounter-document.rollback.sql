-- Rollback of 0002: the encounters lose their stored documents; the reads render them again.
-- Locks: ACCESS EXCLUSIVE on encounter, location_history and score_system_history for
-- milliseconds (DROP COLUMN only marks the column dropped; the space is reclaimed as rows change).
-- The encounters_api functions whose bodies select e.* depend on every column of encounter, so
-- the column is dropped with CASCADE, which drops them too; `encounters-service migrate rollback`
-- re-applies sql/functions afterwards, as `migrate upgrade` does.
-- Lint: dropping the derived column and its trigger functions (no client calls them) is the point
-- of this rollback; no data is lost.
-- squawk-ignore-file ban-drop-column, ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP TRIGGER score_system_history_delete_encounter_document ON encounters.score_system_history;
DROP TRIGGER score_system_history_update_encounter_document ON encounters.score_system_history;
DROP TRIGGER score_system_history_insert_encounter_document ON encounters.score_system_history;
DROP TRIGGER location_history_delete_encounter_document ON encounters.location_history;
DROP TRIGGER location_history_update_encounter_document ON encounters.location_history;
DROP TRIGGER location_history_insert_encounter_document ON encounters.location_history;
DROP FUNCTION encounters.touch_encounter_documents();
DROP TRIGGER encounter_document ON encounters.encounter;
DROP FUNCTION encounters.render_encounter_document();
ALTER TABLE encounters.encounter DROP COLUMN document CASCADE;
