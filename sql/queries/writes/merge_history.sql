-- The record merges an encounter went through, oldest first (EN404 for an unknown encounter).
--
-- Parameters:
--   encounter_id  uuid  the encounter
-- Returns: one row, one column: [{record_uuid, patient_uuid, message_uuid, merged_at}] (JSON).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v encounter_id=… -f sql/queries/writes/merge_history.sql
SELECT encounters_api.merge_history(:'encounter_id'::uuid);
