-- Undoes a record merge: every encounter it moved goes back to its record and patient before it (merge undo, events).
--
-- Parameters:
--   body    jsonb  {message_uuid}: the merge's message
--   caller  text   caller id, written to modified_by
-- Returns: one row, one column: {"total": number of encounters this call moved back} (JSON).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v caller=analyst -f sql/queries/writes/undo_merge.sql \
--     -v body='{"message_uuid": "…"}'
SELECT encounters_api.undo_merge(:'body'::jsonb, :'caller'::text);
