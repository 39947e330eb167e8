-- encounters_api.lock_patients(patient_uuids) → void
-- Takes the advisory lock of each patient named (nulls and repeats ignored) until the caller's
-- transaction ends, one after the other in the order of their lock keys: the one order every
-- writer follows, so two writers never each hold a patient the other waits for.
--
-- Why: a unique index makes a writer wait on another's uncommitted change of a patient's
-- encounter (encounter_one_open_local_key: one open local encounter per patient;
-- encounter_live_epr_id_key: one live encounter per EPR id), whatever row locks either holds. A
-- PATCH holding encounter B's row lock could wait there on a merge that had moved encounter A of
-- the same record and was waiting for B: a deadlock. So every writer that may change a patient's
-- encounters takes that patient's lock before any row lock: create (its patient), update and
-- unlink (encounters_api.lock_encounter), merge (every patient of the record it moves, and the
-- patient it moves them to). Writers of one patient then run one at a time, and the unique-index
-- waits left are between writers of different patients over an EPR id, which cannot form a cycle
-- (each such writer changes one encounter, and a merge's row locks are all of patients it holds).
--
-- The key is a 32-bit hash of the uuid: two patients may share a key, which only makes their
-- writers wait for each other. The two-key form (namespace, key) keeps these locks apart from
-- other advisory locks of the database.
-- Example: psql -c "BEGIN; SELECT encounters_api.lock_patients('{3fa85f64-5717-4562-b3fc-2c963f66afa6}'); COMMIT;"
CREATE OR REPLACE FUNCTION encounters_api.lock_patients(patient_uuids uuid[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
DECLARE
    patient_key integer;
BEGIN
    FOR patient_key IN
        SELECT DISTINCT hashtext(patient::text) FROM unnest(patient_uuids) AS patient
        WHERE patient IS NOT NULL
        ORDER BY 1
    LOOP
        PERFORM pg_advisory_xact_lock(hashtext('encounters.encounter.patient_uuid'), patient_key);
    END LOOP;
END;
$$;

COMMENT ON FUNCTION encounters_api.lock_patients(uuid[]) IS
'Locks the named patients (transaction-level advisory locks, in one global order) before a write '
'changes their encounters.';
