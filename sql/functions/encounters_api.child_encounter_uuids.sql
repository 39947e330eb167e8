-- encounters_api.child_encounter_uuids(roots) → jsonb {"<uuid>": [descendant uuids], …}, or raises EN422 (→ 422)
-- The child_encounter_uuids of a whole answer's encounters, found in one statement: for each of
-- `roots` that has descendants (any depth, deleted ones included), their uuids ordered by
-- creation, then uuid (as encounters_api.encounter_document lists them); a root without any is
-- left out. One call per answer instead of a recursion started per encounter rendered, and it
-- is also the answer's bound (encounters_api.check_descendant_limit): the descendants are read
-- only as far as the 10,001st, so an imported cycle cannot make it loop; more than 10,000 in
-- all, and check_descendant_limit raises its EN422.
-- requires: encounters_api.descendants, encounters_api.check_descendant_limit
CREATE OR REPLACE FUNCTION encounters_api.child_encounter_uuids(roots uuid[])
RETURNS jsonb
LANGUAGE plpgsql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, encounters, encounters_api
SET jit = off  -- as check_descendant_limit: a bounded look-up, never worth compiling
SET plan_cache_mode = force_generic_plan  -- planned once per session
AS $$
DECLARE
    most CONSTANT integer := 10000;
    found_count integer;
    children jsonb;
BEGIN
    WITH found AS MATERIALIZED (
        SELECT
            r.uuid AS root,
            d.uuid,
            d.created
        FROM unnest(roots) AS r (uuid)
        CROSS JOIN LATERAL encounters_api.descendants(r.uuid, TRUE) AS d
        LIMIT most + 1
    )

    SELECT
        (SELECT count(*) FROM found),
        (
            SELECT coalesce(jsonb_object_agg(per_root.root, per_root.uuids), '{}'::jsonb)
            FROM (
                SELECT
                    f.root,
                    jsonb_agg(f.uuid ORDER BY f.created, f.uuid) AS uuids
                FROM found AS f
                GROUP BY f.root
            ) AS per_root
        )
    INTO found_count, children;
    IF found_count > most THEN
        PERFORM encounters_api.check_descendant_limit(roots, TRUE);  -- raises EN422, with its message
    END IF;
    RETURN children;
END;
$$;

COMMENT ON FUNCTION encounters_api.child_encounter_uuids(uuid[]) IS
'The descendants of each of a list of encounters, as one JSON object keyed by uuid; EN422 over 10,000 in all.';
