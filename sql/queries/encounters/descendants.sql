-- The uuids of every descendant of an encounter, any depth (GET /dhos/v1/encounter/{id}/children).
--
-- A deleted descendant and everything below it are left out unless show_deleted is true.
-- An unknown encounter has no descendants: the answer is []. More than 10,000 descendants:
-- EN422 (encounters_api.check_descendant_limit, checked before they are listed).
-- The encounter is a one-row subquery that OFFSET 0 keeps apart, so that its uuid reaches the
-- recursion as a run-time value even in a custom plan: the plan is the same for every uuid, and
-- the prepared statement settles on it instead of planning every call again (0.3 ms).
-- Parameters:
--   encounter_id  uuid     the encounter whose descendants are wanted
--   show_deleted  boolean  true: include deleted descendants and what hangs below them
-- Returns: one row, one column: a JSON array of uuid strings, oldest creation first.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v encounter_id=2126393f-c86b-4bf2-9f68-42bb03a7b68a -v show_deleted=false \
--     -f sql/queries/encounters/descendants.sql
SELECT coalesce(jsonb_agg(d.uuid ORDER BY d.created, d.uuid), '[]'::jsonb) AS descendants
FROM (SELECT :'encounter_id'::uuid AS uuid OFFSET 0) AS e  -- noqa: PRS
CROSS JOIN LATERAL encounters_api.descendants(e.uuid, :'show_deleted'::boolean) AS d
WHERE encounters_api.check_descendant_limit(ARRAY[(:'encounter_id'::uuid)], :'show_deleted'::boolean);
