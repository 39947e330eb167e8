-- encounters_api.get_encounter(encounter_id, show_deleted) → jsonb
-- One encounter in the full form (without child_encounter_uuids). A deleted encounter counts as
-- not found unless show_deleted. Raises EN404 when there is none to show.
-- requires: encounters_api.encounter_document
CREATE OR REPLACE FUNCTION encounters_api.get_encounter(encounter_id uuid, show_deleted boolean)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
DECLARE
    found_json jsonb;
BEGIN
    SELECT d.document INTO found_json
    FROM encounters.encounter AS e
    CROSS JOIN LATERAL encounters_api.encounter_document(e) AS d (document)
    WHERE e.uuid = encounter_id AND (show_deleted OR e.deleted_at IS NULL);
    IF found_json IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EN404', MESSAGE = format('encounter %s not found', encounter_id);
    END IF;
    RETURN found_json;
END;
$$;

COMMENT ON FUNCTION encounters_api.get_encounter(uuid, boolean) IS
'One encounter in the full form; deleted ones only with show_deleted. Raises EN404.';
