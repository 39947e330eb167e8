-- One encounter by id, in the full form, with its version; a deleted one only with show_deleted
-- (else EN404).
--
-- Parameters:
--   encounter_id  uuid     the encounter
--   show_deleted  boolean  whether a deleted encounter is shown
-- Returns: one row: the encounter in the full form (JSON) and its version (the ETag), both read
--   in the statement's one snapshot.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v encounter_id=… -v show_deleted=false -f sql/queries/writes/get_encounter.sql
SELECT
    encounters_api.get_encounter(:'encounter_id'::uuid, :'show_deleted'::boolean) AS encounter,
    (
        SELECT encounters_api.encounter_version(e)
        FROM encounters.encounter AS e
        WHERE e.uuid = :'encounter_id'::uuid
    ) AS version;
