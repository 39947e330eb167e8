-- One encounter by id, in the full form; a deleted one only with show_deleted (else EN404).
--
-- Parameters:
--   encounter_id  uuid     the encounter
--   show_deleted  boolean  whether a deleted encounter is shown
-- Returns: one row, one column: the encounter in the full form (JSON).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v encounter_id=… -v show_deleted=false -f sql/queries/writes/get_encounter.sql
SELECT encounters_api.get_encounter(:'encounter_id'::uuid, :'show_deleted'::boolean);
