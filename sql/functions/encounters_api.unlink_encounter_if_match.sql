-- encounters_api.unlink_encounter_if_match(encounter_id, body, caller, if_match) → (result, version)
-- DELETE /dhos/v1/encounter/{id}: encounters_api.unlink_encounter, when the encounter's version
-- is one of if_match (encounters_api.check_version: an empty array for no If-Match or
-- `If-Match: *`), and the version it is at afterwards.
--   412 EN412  another version: nothing is written.
-- requires: encounters_api.check_version, encounters_api.encounter_version, encounters_api.unlink_encounter
CREATE OR REPLACE FUNCTION encounters_api.unlink_encounter_if_match(
    encounter_id uuid,
    body jsonb,
    caller text,
    if_match bigint[],
    OUT result jsonb,
    OUT version bigint
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, encounters_api, pg_temp
AS $$
BEGIN
    PERFORM encounters_api.check_version(encounter_id, if_match);
    result := encounters_api.unlink_encounter(encounter_id, body, caller);
    SELECT encounters_api.encounter_version(e) INTO version FROM encounters.encounter AS e WHERE e.uuid = encounter_id;
END;
$$;

COMMENT ON FUNCTION encounters_api.unlink_encounter_if_match(uuid, jsonb, text, bigint[]) IS
'unlink_encounter when the encounter is at one of the versions given (any when none is given), else 412 (EN412); '
'also returns the version after it.';
