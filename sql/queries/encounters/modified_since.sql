-- Encounters modified strictly after a time, newest modification first (GET /dhos/v2/encounters).
--
-- The full form here carries no child_encounter_uuids: it is the stored document
-- (encounters_api.full_document; rendered only when expanded). The encounters are read in a subquery
-- that OFFSET 0 keeps apart, so that the scan has only `modified` to go by and
-- encounter_modified_idx is its one index (without statistics, the partial index
-- encounter_location_current_idx looked nearly empty and was walked whole instead).
-- Parameters:
--   modified_since  timestamptz  only encounters whose `modified` is later than this
--   compact         boolean      true: the compact form
--   expanded        boolean      true: add created, created_by, modified, modified_by
--   show_deleted    boolean      true: include deleted encounters
--   show_children   boolean      true: include child encounters
-- Returns: one row, one column: a JSON array (as text) of encounters ([] when none). Read it with
--   `psql -At … | jq .`
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v modified_since=2020-12-30T00:00:00Z -v compact=true -v expanded=false \
--     -v show_deleted=false -v show_children=false -f sql/queries/encounters/modified_since.sql

-- The array is written as json_agg writes it ([<encounter>, <encounter>, …]), joined as text
-- from the stored documents' text: a JSON aggregate or a cast to json would read every document
-- again (1-4 µs each). The value is that JSON text, of type text.
SELECT
    coalesce(
        '['
        || string_agg(
            CASE
                -- The compact form is not stored: rendered, only when asked for.
                WHEN :'compact'::boolean
                    THEN (
                        SELECT c.document::text
                        FROM
                            encounters_api.encounter_document(e::encounters.encounter, TRUE, :'expanded'::boolean)
                                AS c (document)
                    )
                ELSE encounters_api.full_document(e::encounters.encounter, e.document, :'expanded'::boolean, NULL)
            END,
            ', '
            ORDER BY e.modified DESC, e.uuid DESC
        )
        || ']',
        '[]'
    ) AS encounters
FROM (
    SELECT m.*
    FROM encounters.encounter AS m
    WHERE m.modified > :'modified_since'::timestamptz
    OFFSET 0  -- noqa: AM09
) AS e
WHERE
    (:'show_deleted'::boolean OR e.deleted_at IS NULL)
    AND (:'show_children'::boolean OR e.child_of_encounter_uuid IS NULL);
