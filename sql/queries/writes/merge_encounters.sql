-- Moves every encounter of a child patient record to the parent record and patient (merge history, events).
--
-- Parameters:
--   body    jsonb  {child_record_uuid, parent_record_uuid, parent_patient_uuid, message_uuid}
--   caller  text   caller id, written to modified_by
-- Returns: one row, one column: {"total": number of encounters this call moved} (JSON).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v caller=analyst -f sql/queries/writes/merge_encounters.sql \
--     -v body='{"child_record_uuid": "…", "parent_record_uuid": "…", "parent_patient_uuid": "…", "message_uuid": "…"}'
SELECT encounters_api.merge_encounters(:'body'::jsonb, :'caller'::text);
