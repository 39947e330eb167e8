-- encounters_api.descendant_uuids(parent_uuid, include_deleted) → jsonb array of uuids
-- Every descendant of an encounter, any depth. Without include_deleted, a deleted encounter
-- and everything below it are left out.
CREATE OR REPLACE FUNCTION encounters_api.descendant_uuids(
    parent_uuid uuid,
    include_deleted boolean
)
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
BEGIN ATOMIC
    WITH RECURSIVE descendant AS (
        SELECT c.uuid, c.created
        FROM encounters.encounter AS c
        WHERE c.child_of_encounter_uuid = parent_uuid
            AND (include_deleted OR c.deleted_at IS NULL)
        UNION
        SELECT c.uuid, c.created
        FROM encounters.encounter AS c
        INNER JOIN descendant AS d ON c.child_of_encounter_uuid = d.uuid
        WHERE include_deleted OR c.deleted_at IS NULL
    )
    SELECT coalesce(jsonb_agg(d.uuid ORDER BY d.created, d.uuid), '[]'::jsonb)
    FROM descendant AS d;
END;

COMMENT ON FUNCTION encounters_api.descendant_uuids(uuid, boolean) IS
'Every descendant of an encounter (any depth), as a JSON array; deleted subtrees only when asked.';
