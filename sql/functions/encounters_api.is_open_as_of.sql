-- encounters_api.is_open_as_of(e, at) → boolean
-- docs/api.md "Open as of T": not deleted, and not discharged, or discharged later than T.
-- `at` = 'infinity' asks "open now" (no discharge time at all); `at` = '-infinity' accepts every
-- encounter that is not deleted, discharged or not.
-- Written as one expression so the planner inlines it and can use the partial indexes on
-- `deleted_at IS NULL`.
CREATE OR REPLACE FUNCTION encounters_api.is_open_as_of(e encounters.encounter, at timestamptz)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
RETURN e.deleted_at IS NULL AND (e.discharged_at IS NULL OR e.discharged_at > at);

COMMENT ON FUNCTION encounters_api.is_open_as_of(encounters.encounter, timestamptz) IS
'Open as of a time: not deleted, and not discharged or discharged after it (''infinity'': open now).';
