-- encounters_api.descendants(parent_uuid, include_deleted) → (uuid, created) rows
-- Every descendant of an encounter, any depth. Without include_deleted, a deleted encounter
-- and everything below it are left out.
-- A set-returning LANGUAGE sql function of one statement, so that the planner inlines it into
-- the query that uses it (encounter_document, once per encounter): the recursion is planned
-- with that query instead of on every call.
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
        SELECT c.uuid, c.created
        FROM encounters.encounter AS c
        WHERE c.child_of_encounter_uuid = descendants.parent_uuid
            AND (descendants.include_deleted OR c.deleted_at IS NULL)
        UNION
        SELECT c.uuid, c.created
        FROM encounters.encounter AS c
        INNER JOIN descendant AS d ON c.child_of_encounter_uuid = d.uuid
        WHERE descendants.include_deleted OR c.deleted_at IS NULL
    )
    SELECT d.uuid, d.created
    FROM descendant AS d;
END;

COMMENT ON FUNCTION encounters_api.descendants(uuid, boolean) IS
'Every descendant of an encounter (any depth) with its creation time; deleted subtrees only when asked.';
