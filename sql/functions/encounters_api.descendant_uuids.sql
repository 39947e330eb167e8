-- encounters_api.descendant_uuids(parent_uuid, include_deleted) → jsonb array of uuids
-- Every descendant of an encounter (encounters_api.descendants), oldest creation first.
-- Without include_deleted, a deleted encounter and everything below it are left out.
-- requires: encounters_api.descendants
CREATE OR REPLACE FUNCTION encounters_api.descendant_uuids(
    parent_uuid uuid,
    include_deleted boolean
)
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
BEGIN ATOMIC
    SELECT coalesce(jsonb_agg(d.uuid ORDER BY d.created, d.uuid), '[]'::jsonb)
    FROM encounters_api.descendants(descendant_uuids.parent_uuid, descendant_uuids.include_deleted) AS d;
END;

COMMENT ON FUNCTION encounters_api.descendant_uuids(uuid, boolean) IS
'Every descendant of an encounter (any depth), as a JSON array; deleted subtrees only when asked.';
