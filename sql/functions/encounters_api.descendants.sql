-- encounters_api.descendants(parent_uuid, include_deleted) → (uuid, created) rows
-- Every descendant of an encounter, any depth. Without include_deleted, a deleted encounter
-- and everything below it are left out.
-- A set-returning LANGUAGE sql function of one statement, so that the planner inlines it into
-- the query that uses it (encounter_document, once per encounter): the recursion is planned
-- with that query instead of on every call.
-- Planned as one look-up of encounter_parent_idx per encounter found, whatever the statistics
-- say (tests/reliability/test_deep_hierarchy.py). The planner sizes a recursion by its
-- statistics: with one parent of 10,000 children it expected 10,000 children for every
-- encounter, so it chose a merge join over the whole parent index and a UNION hash table sized
-- for 100,000 rows, built for every encounter rendered (10,000 encounters: 23 s). Hence:
--   - UNION ALL: no hash table. The hierarchy is a forest (each encounter has one parent and
--     update_encounter refuses a cycle), so no encounter is reached twice;
--   - the children of each encounter found are a LATERAL subquery (OFFSET 0 keeps it one):
--     a join the planner can only make as a nested loop, one probe per encounter;
--   - each probe is `>= … AND <= …` rather than `=`: for an equality with a value known only at
--     run time the planner uses the column's statistics (one big family: 10,000 rows, a
--     sequential scan per probe); for a range between run-time values it assumes 0.5% of the
--     table, whatever the statistics, so the index is the only sensible path.
-- Callers that cannot trust the data (imported rows) put a LIMIT on what they read: the
-- recursion is evaluated only as far as its rows are fetched.
CREATE OR REPLACE FUNCTION encounters_api.descendants(
    parent_uuid uuid,
    include_deleted boolean
)
RETURNS TABLE (uuid uuid, created timestamptz)
LANGUAGE sql
STABLE
PARALLEL SAFE
BEGIN ATOMIC
    WITH RECURSIVE descendant AS (
        SELECT
            c.uuid,
            c.created
        FROM encounters.encounter AS c
        WHERE
            c.child_of_encounter_uuid >= descendants.parent_uuid
            AND c.child_of_encounter_uuid <= descendants.parent_uuid
            AND (descendants.include_deleted OR c.deleted_at IS NULL)
        UNION ALL
        SELECT
            c.uuid,
            c.created
        FROM descendant AS d
        CROSS JOIN LATERAL (
            SELECT
                c.uuid,
                c.created
            FROM encounters.encounter AS c
            WHERE
                c.child_of_encounter_uuid >= d.uuid
                AND c.child_of_encounter_uuid <= d.uuid
                AND (descendants.include_deleted OR c.deleted_at IS NULL)
            OFFSET 0  -- noqa: AM09
        ) AS c
    )

    SELECT
        d.uuid,
        d.created
    FROM descendant AS d;
END;

COMMENT ON FUNCTION encounters_api.descendants(uuid, boolean) IS
'Every descendant of an encounter (any depth) with its creation time; deleted subtrees only when asked.';
