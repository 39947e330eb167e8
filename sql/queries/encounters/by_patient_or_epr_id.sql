-- A patient's encounters and/or the encounters with an EPR encounter id (GET /dhos/v2/encounter).
--
-- Both filters given: encounters matching both; neither: none (the route refuses that request).
-- Order: open ones first (not discharged, not deleted), then the newest admission first, then
-- the newest creation first. The full form carries child_encounter_uuids (every descendant,
-- deleted ones included): more than 10,000 in all → EN422 (encounters_api.child_encounter_uuids,
-- checked before anything is rendered).
-- Parameters:
--   patient_id        text     the patient's uuid; '' = any patient
--   epr_encounter_id  text     the EPR encounter id; '' = any
--   compact           boolean  true: the compact form
--   expanded          boolean  true: add created, created_by, modified, modified_by
--   show_deleted      boolean  true: include deleted encounters
--   show_children     boolean  true: include child encounters
-- Returns: one row, one column: a JSON array (as text) of encounters ([] when none). Read it with
--   `psql -At … | jq .`
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v patient_id=2126393f-c86b-4bf2-9f68-42bb03a7b68a -v epr_encounter_id= \
--     -v compact=false -v expanded=false -v show_deleted=false -v show_children=false \
--     -f sql/queries/encounters/by_patient_or_epr_id.sql
WITH listed AS MATERIALIZED (
    SELECT e.*
    FROM encounters.encounter AS e
    WHERE
        -- Each alternative an index look-up, also in a generic plan (the service prepares the query).
        (
            e.patient_uuid = nullif(:'patient_id'::text, '')::uuid
            OR (:'patient_id'::text = '' AND e.epr_encounter_id = :'epr_encounter_id'::text)
        )
        AND (:'epr_encounter_id'::text = '' OR e.epr_encounter_id = :'epr_encounter_id'::text)
        AND (:'show_deleted'::boolean OR e.deleted_at IS NULL)
        AND (:'show_children'::boolean OR e.child_of_encounter_uuid IS NULL)
),

-- Every child_encounter_uuids of the answer in one call, which is also the answer's bound.
children AS MATERIALIZED (
    SELECT encounters_api.child_encounter_uuids(array(SELECT l.uuid FROM listed AS l)) AS uuids
    WHERE NOT :'compact'::boolean
)

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
                ELSE encounters_api.full_document(e::encounters.encounter, e.document, :'expanded'::boolean, k.uuids)
            END,
            ', '
            ORDER BY
                e.discharged_at IS NULL AND e.deleted_at IS NULL DESC,
                e.admitted_at DESC,
                e.created DESC,
                e.uuid DESC
        )
        || ']',
        '[]'
    ) AS encounters
FROM listed AS e
LEFT JOIN children AS k ON TRUE;
