-- encounters_api.check_version(encounter_id, if_match) → encounters.encounter
-- The encounter, locked as encounters_api.lock_encounter locks it (its patient, then its row,
-- until the caller's transaction ends), when its version is one of if_match: the versions an
-- If-Match header named. An empty if_match names no condition (no If-Match, or `If-Match: *`):
-- any existing encounter. Checked under the lock, so that of concurrent writes that name the
-- same version, exactly one finds it: the others find the version it made.
--   404 EN404  no such encounter (whatever if_match says).
--   412 EN412  the encounter is at another version. The caller writes nothing before this check.
-- requires: encounters_api.lock_encounter, encounters_api.encounter_version
CREATE OR REPLACE FUNCTION encounters_api.check_version(encounter_id uuid, if_match bigint[])
RETURNS encounters.encounter
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
DECLARE
    e encounters.encounter := encounters_api.lock_encounter(encounter_id);
BEGIN
    IF cardinality(if_match) > 0 AND NOT encounters_api.encounter_version(e) = ANY(if_match) THEN
        RAISE EXCEPTION USING ERRCODE = 'EN412',
            MESSAGE = format(
                'encounter %s is at version %s, not the version If-Match names; read it again and retry',
                encounter_id, encounters_api.encounter_version(e)
            );
    END IF;
    RETURN e;
END;
$$;

COMMENT ON FUNCTION encounters_api.check_version(uuid, bigint[]) IS
'The encounter, locked, if its version is one of those given (any when none is given); else 412 (EN412).';
