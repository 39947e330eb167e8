-- encounters_api.drop_data() → void
-- Empties every data table of the schema `encounters` — encounters, their histories and kept
-- versions, merge history and merge undos, and the event outbox — and keeps the schema, the
-- migration history (yoyo's tables in `public`) and encounters.deployed_function. For resetting
-- demo and test environments (POST /drop_data, served only with ALLOW_DROP_DATA=true). TRUNCATE
-- takes an ACCESS EXCLUSIVE lock on each table until the transaction ends.
CREATE OR REPLACE FUNCTION encounters_api.drop_data()
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, pg_temp
AS $$
    TRUNCATE encounters.encounter, encounters.location_history, encounters.score_system_history,
        encounters.merge_history, encounters.merge_undo, encounters.outbox,
        encounters.encounter_history;
$$;

COMMENT ON FUNCTION encounters_api.drop_data() IS
'Empties the data tables (not the schema, not the migration history); for test and demo environments.';
