-- encounters_api.fhir_status_matches(discharged_at, statuses) → boolean
-- Whether an encounter that is not deleted has one of the FHIR Encounter statuses `statuses`
-- (in-progress: not discharged; finished: discharged; docs/api.md "FHIR"); any, when `statuses`
-- is empty. Written as tests of discharged_at, so that a search for in-progress encounters can
-- use an index of the open ones (encounter_open_idx) once the planner has folded the constants.
-- Example: psql -c "SELECT encounters_api.fhir_status_matches(NULL, '{in-progress}')"
CREATE OR REPLACE FUNCTION encounters_api.fhir_status_matches(discharged_at timestamptz, statuses text[])
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN cardinality(statuses) = 0
OR ('in-progress' = ANY(statuses) AND discharged_at IS NULL)
OR ('finished' = ANY(statuses) AND discharged_at IS NOT NULL);

COMMENT ON FUNCTION encounters_api.fhir_status_matches(timestamptz, text[]) IS
'Whether a non-deleted encounter discharged at discharged_at has one of the FHIR statuses (any when none are given).';
