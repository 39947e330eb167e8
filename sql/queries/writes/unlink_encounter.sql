-- Detaches an encounter from the parent named in the body (unchanged if that is not its parent),
-- if it is at a version If-Match names.
--
-- Parameters:
--   encounter_id  uuid      the (child) encounter
--   body          jsonb     {"child_of_encounter_uuid": parent uuid}
--   caller        text      caller id, written to modified_by
--   if_match      bigint[]  the versions If-Match names; '{}' for none (no If-Match, or *): any version
-- Returns: one row: result (the encounter in the full form, JSON) and version (its version
--   afterwards, the ETag). EN412 when the encounter is at another version.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v encounter_id=… -v body='{"child_of_encounter_uuid": "…"}' -v caller=analyst \
--     -v if_match='{}' -f sql/queries/writes/unlink_encounter.sql
SELECT
    result,
    version
FROM
    encounters_api.unlink_encounter_if_match(
        :'encounter_id'::uuid, :'body'::jsonb, :'caller'::text, :'if_match'::bigint[]
    );
