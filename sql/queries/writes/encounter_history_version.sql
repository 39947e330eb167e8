-- One version of an encounter (EN404 for an unknown encounter; no row for an unknown version).
--
-- Parameters:
--   encounter_id  uuid    the encounter
--   version       bigint  the version
-- Returns: at most one row, one column: {version, modified, modified_by, encounter} (JSON), as in
--   sql/queries/writes/encounter_history.sql.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v encounter_id=… -v version=1 -f sql/queries/writes/encounter_history_version.sql
SELECT v.entry
FROM jsonb_array_elements(encounters_api.encounter_history(:'encounter_id'::uuid)) AS v (entry)
WHERE (v.entry ->> 'version')::bigint = :'version'::bigint;
