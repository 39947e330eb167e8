-- Applies a PATCH body to an encounter (history rows and events in the same transaction).
--
-- Parameters:
--   encounter_id  uuid     the encounter
--   body          jsonb    the PATCH body: only the fields present change
--   caller        text     caller id, written to modified_by and history rows
--   can_edit_ews  boolean  whether the caller may change score_system/spo2_scale
-- Returns: one row: refusal (text; set when a score change was refused and audited, then
--   result is null) and result (the encounter in the full form, JSON).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v encounter_id=… -v body='{"location_uuid": "…"}' -v caller=analyst \
--     -v can_edit_ews=false -f sql/queries/writes/update_encounter.sql
SELECT
    refusal,
    result
FROM encounters_api.update_encounter(:'encounter_id'::uuid, :'body'::jsonb, :'caller'::text, :'can_edit_ews'::boolean);
