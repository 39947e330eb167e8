-- Every version of an encounter, oldest first, deleted encounters included (EN404 for an unknown encounter).
--
-- Parameters:
--   encounter_id  uuid  the encounter
-- Returns: one row, one column: [{version, modified, modified_by, encounter}] (JSON), `encounter`
--   the expanded full form as it was.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v encounter_id=… -f sql/queries/writes/encounter_history.sql
SELECT encounters_api.encounter_history(:'encounter_id'::uuid);
