-- encounters_api.check_descendant_limit(roots, include_deleted) → true, or raises EN422 (→ 422)
-- The bound on the work of one read answer: it lists at most 10,000 descendants in all (the
-- child_encounter_uuids of its encounters, summed; or the children route's list). Without it a
-- chain of 10,000 encounters listed by patient would list 50 million uuids, and an imported
-- cycle would list them forever. Counts the descendants of `roots` (any depth; deleted subtrees
-- only with include_deleted) only as far as the 10,001st, so the check itself is bounded.
-- A query calls it once, before it renders anything (a condition that depends on no row is
-- evaluated first, as the plan's One-Time Filter).
-- requires: encounters_api.descendants
CREATE OR REPLACE FUNCTION encounters_api.check_descendant_limit(roots uuid[], include_deleted boolean)
RETURNS boolean
LANGUAGE plpgsql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, encounters, encounters_api
SET jit = off  -- as encounters_api.encounter_json: a bounded look-up, never worth compiling
SET plan_cache_mode = force_generic_plan  -- planned once per session: a custom plan per call cost 0.3 ms
AS $$
DECLARE
    most CONSTANT integer := 10000;
BEGIN
    IF (
        SELECT count(*)
        FROM (
            SELECT
            FROM unnest(roots) AS r (uuid)
            CROSS JOIN LATERAL encounters_api.descendants(r.uuid, include_deleted) AS d
            LIMIT most + 1
        ) AS found
    ) > most THEN
        RAISE EXCEPTION USING ERRCODE = 'EN422',
            MESSAGE = format('the answer would list more than %s descendant encounters, more than one answer may list', most);
    END IF;
    RETURN TRUE;
END;
$$;

COMMENT ON FUNCTION encounters_api.check_descendant_limit(uuid[], boolean) IS
'True, or raises EN422 when the encounters have more than 10,000 descendants in all (the bound on one read answer).';
