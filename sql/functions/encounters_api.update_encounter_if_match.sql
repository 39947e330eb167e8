-- encounters_api.update_encounter_if_match(encounter_id, body, caller, can_edit_ews, if_match)
--   → (refusal, result, version)
-- PATCH /dhos/v1/encounter/{id}: encounters_api.update_encounter (every rule, history row and
-- event), when the encounter's version is one of if_match (encounters_api.check_version: an
-- empty array for no If-Match or `If-Match: *`), and the version it is at afterwards: one more
-- when the PATCH changed the full form, the same when it changed nothing.
--   412 EN412  another version: nothing is written, not even the audit event of a refused
--              score change.
-- requires: encounters_api.check_version, encounters_api.encounter_version, encounters_api.update_encounter
CREATE OR REPLACE FUNCTION encounters_api.update_encounter_if_match(
    encounter_id uuid,
    body jsonb,
    caller text,
    can_edit_ews boolean,
    if_match bigint[],
    OUT refusal text,
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
    SELECT u.refusal, u.result INTO refusal, result
    FROM encounters_api.update_encounter(encounter_id, body, caller, can_edit_ews) AS u;
    SELECT encounters_api.encounter_version(e) INTO version FROM encounters.encounter AS e WHERE e.uuid = encounter_id;
END;
$$;

COMMENT ON FUNCTION encounters_api.update_encounter_if_match(uuid, jsonb, text, boolean, bigint[]) IS
'update_encounter when the encounter is at one of the versions given (any when none is given), else 412 (EN412); '
'also returns the version after it.';
