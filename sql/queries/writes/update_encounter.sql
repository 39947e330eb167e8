-- Applies a PATCH body to an encounter (history rows and events in the same transaction), if it
-- is at a version If-Match names.
--
-- Parameters:
--   encounter_id  uuid      the encounter
--   body          jsonb     the PATCH body: only the fields present change
--   caller        text      caller id, written to modified_by and history rows
--   can_edit_ews  boolean   whether the caller may change score_system/spo2_scale
--   if_match      bigint[]  the versions If-Match names; '{}' for none (no If-Match, or *): any version
-- Returns: one row: refusal (text; set when a score change was refused and audited, then
--   result is null), result (the encounter in the full form, JSON) and version (its version
--   afterwards, the ETag). EN412 when the encounter is at another version.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v encounter_id=… -v body='{"location_uuid": "…"}' -v caller=analyst \
--     -v can_edit_ews=false -v if_match='{}' -f sql/queries/writes/update_encounter.sql
SELECT
    refusal,
    result,
    version
FROM
    encounters_api.update_encounter_if_match(
        :'encounter_id'::uuid, :'body'::jsonb, :'caller'::text, :'can_edit_ews'::boolean, :'if_match'::bigint[]
    );
