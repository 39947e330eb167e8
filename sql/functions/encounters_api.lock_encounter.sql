-- encounters_api.lock_encounter(encounter_id) → encounters.encounter
-- The encounter, row-locked (FOR NO KEY UPDATE: its uuid never changes) until the caller's
-- transaction ends, or EN404 (→ 404) when there is none. Writers of one encounter take this lock
-- first: it serialises concurrent changes (a gap-free location history) and orders their outbox
-- messages per encounter, which the event relay relies on.
--
-- Before the row, it takes the lock of the encounter's patient (encounters_api.lock_patients:
-- patient, then row, is every writer's order). Only a merge changes an encounter's patient, and
-- a merge holds the patient's lock while it does; if one committed between reading the patient
-- and locking the row, the lock taken was the wrong one and the call fails with 40001
-- (serialization_failure), which the service retries as a new transaction.
-- requires: encounters_api.lock_patients
CREATE OR REPLACE FUNCTION encounters_api.lock_encounter(encounter_id uuid)
RETURNS encounters.encounter
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
DECLARE
    patient uuid;
    e encounters.encounter;
BEGIN
    SELECT patient_uuid INTO patient FROM encounters.encounter WHERE uuid = encounter_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'EN404', MESSAGE = format('encounter %s not found', encounter_id);
    END IF;
    PERFORM encounters_api.lock_patients(ARRAY[patient]);
    SELECT * INTO e FROM encounters.encounter WHERE uuid = encounter_id FOR NO KEY UPDATE;
    IF e.patient_uuid IS DISTINCT FROM patient THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = format('encounter %s moved to another patient while this write waited; try again', encounter_id);
    END IF;
    RETURN e;
END;
$$;

COMMENT ON FUNCTION encounters_api.lock_encounter(uuid) IS
'The encounter, locked (after its patient''s lock) for the rest of the transaction; 404 (EN404) when it does not exist.';
