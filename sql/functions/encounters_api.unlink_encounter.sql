-- encounters_api.unlink_encounter(encounter_id, body, caller) → jsonb
-- DELETE /dhos/v1/encounter/{id} with body {"child_of_encounter_uuid": P}: when the encounter's
-- parent is P, it becomes top-level (modified/modified_by set, dhos.DM000007 recorded). When its
-- parent is not P (another parent, or none: e.g. a retried DELETE), nothing changes and no event
-- is recorded: the call is idempotent and the answer shows the link as it stands.
-- Returns the full form.
--   404 EN404  no such encounter.
--   409 EN409  the encounter would become a second open local top-level encounter of its patient.
-- requires: encounters_api.emit, encounters_api.raise_duplicate
-- requires: encounters_api.lock_encounter
CREATE OR REPLACE FUNCTION encounters_api.unlink_encounter(encounter_id uuid, body jsonb, caller text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, encounters_api, pg_temp
AS $$
DECLARE
    e encounters.encounter;
    rule text;
BEGIN
    e := encounters_api.lock_encounter(encounter_id);
    IF e.child_of_encounter_uuid = (body ->> 'child_of_encounter_uuid')::uuid THEN
        BEGIN
            UPDATE encounters.encounter
            SET child_of_encounter_uuid = NULL, modified = clock_timestamp(), modified_by = caller
            WHERE uuid = e.uuid
            RETURNING * INTO e;
        EXCEPTION WHEN unique_violation THEN
            GET STACKED DIAGNOSTICS rule = CONSTRAINT_NAME;
            PERFORM encounters_api.raise_duplicate(rule, e);
        END;
        PERFORM encounters_api.emit('dhos.DM000007', jsonb_build_object('encounter_id', e.uuid), e.uuid);
    END IF;
    RETURN e.document::jsonb;  -- the full form, as stored (trigger encounter_document)
END;
$$;

COMMENT ON FUNCTION encounters_api.unlink_encounter(uuid, jsonb, text) IS
'Detaches an encounter from the parent named in the body (else no change); returns the full form.';
