-- encounters_api.open_encounters_at(location_ids, open_as_of) → encounters
-- The ward census: top-level encounters at one of the locations that are open as of a time.
--   open_as_of  'infinity' = open now (not discharged, not deleted)
-- Inlined by the planner: an index scan on encounter_location_current_idx.
-- requires: encounters_api.is_open_as_of
CREATE OR REPLACE FUNCTION encounters_api.open_encounters_at(location_ids uuid[], open_as_of timestamptz)
RETURNS SETOF encounters.encounter
LANGUAGE sql
STABLE
PARALLEL SAFE
BEGIN ATOMIC
    SELECT e.*
    FROM encounters.encounter AS e
    WHERE
        e.location_uuid = ANY(open_encounters_at.location_ids)
        AND e.child_of_encounter_uuid IS NULL
        AND encounters_api.is_open_as_of(e, open_encounters_at.open_as_of);
END;

COMMENT ON FUNCTION encounters_api.open_encounters_at(uuid[], timestamptz) IS
'Top-level encounters at one of the locations, open as of a time (''infinity'': open now).';
