-- encounters_api.latest_encounter(patient_id, location_ids, open_as_of) → 0 or 1 encounter
-- The one definition of a patient's "latest" encounter (docs/api.md, GET /dhos/v2/encounter/latest):
-- among the patient's top-level encounters that are open as of `open_as_of`, the open one
-- first, then the newest admission, then the newest creation.
--   location_ids  only encounters at one of these locations; null = anywhere
--   open_as_of    'infinity' = open now; '-infinity' = any encounter that is not deleted
-- Declared as a set-returning LANGUAGE sql function so that the planner inlines it: called
-- per patient (CROSS JOIN LATERAL) it is one probe of encounter_patient_idx, whose key is this
-- order (migration 0010): the patient's encounters come in it, the first one that passes the
-- conditions is the answer, and the rest are not read (3 µs per patient instead of 34 µs for
-- one with 11 stays, which were all read and sorted).
-- `(child_of_encounter_uuid IS NULL) IS TRUE` says the same as `IS NULL`, in a form from which
-- the planner cannot prove the predicate of the partial encounter_location_current_idx
-- (deleted_at IS NULL AND child_of_encounter_uuid IS NULL), so that index is not a candidate: a
-- planner without statistics (after a bulk load, before the first ANALYZE) takes `IS NULL` to
-- hold for 0.5% of the rows, finds that index nearly empty, and walked all of it for every
-- patient, 26 times slower (tests/reliability/test_plans_without_statistics.py). (Fencing the
-- look-up by patient in a subquery, as before, hides the LIMIT from it: it then read and
-- sorted all of the patient's encounters.)
-- requires: encounters_api.is_open_as_of
CREATE OR REPLACE FUNCTION encounters_api.latest_encounter(
    patient_id uuid,
    location_ids uuid[],
    open_as_of timestamptz
)
RETURNS SETOF encounters.encounter
LANGUAGE sql
STABLE
PARALLEL SAFE
ROWS 1
BEGIN ATOMIC
    SELECT e.*
    FROM encounters.encounter AS e
    WHERE
        e.patient_uuid = latest_encounter.patient_id
        AND (e.child_of_encounter_uuid IS NULL) IS TRUE  -- not provable: see above
        AND encounters_api.is_open_as_of(e::encounters.encounter, latest_encounter.open_as_of)
        AND (
            latest_encounter.location_ids IS NULL
            OR e.location_uuid = ANY(latest_encounter.location_ids)
        )
    ORDER BY e.discharged_at IS NULL DESC, e.admitted_at DESC, e.created DESC, e.uuid DESC
    LIMIT 1;
END;

COMMENT ON FUNCTION encounters_api.latest_encounter(uuid, uuid[], timestamptz) IS
'A patient''s latest top-level encounter open as of a time (open first, then newest admission, '
'then newest creation), optionally only at some locations.';
