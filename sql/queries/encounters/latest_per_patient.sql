-- The latest encounter of each patient of a list (POST /dhos/v2/encounter/latest), in one query.
--
-- "Latest" is encounters_api.latest_encounter: top-level, not deleted, open as of open_as_of;
-- the open one first, then the newest admission, then the newest creation. Patients without
-- one are left out; a patient listed twice appears once.
-- Parameters:
--   patient_ids  uuid[]       the patients, e.g. '{uuid1,uuid2}'
--   open_as_of   timestamptz  not discharged, or discharged later than this; '-infinity' = discharged or not
--   compact      boolean      true: the compact form
-- Returns: one row, one column: a JSON object (as text) {patient_uuid: encounter} ({} when none; the full
--   form carries child_encounter_uuids: more than 10,000 in all → EN422, checked by
--   encounters_api.child_encounter_uuids before anything is rendered). Read it with
--   `psql -At … | jq .`
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v patient_ids='{2126393f-c86b-4bf2-9f68-42bb03a7b68a}' -v open_as_of=-infinity \
--     -v compact=false -f sql/queries/encounters/latest_per_patient.sql
WITH latest AS MATERIALIZED (
    SELECT l.*
    FROM (SELECT DISTINCT unnest(:'patient_ids'::uuid[]) AS patient_uuid) AS p
    CROSS JOIN LATERAL encounters_api.latest_encounter(p.patient_uuid, NULL, :'open_as_of'::timestamptz) AS l
),

-- Every child_encounter_uuids of the answer in one call, which is also the answer's bound.
children AS MATERIALIZED (
    SELECT encounters_api.child_encounter_uuids(array(SELECT t.uuid FROM latest AS t)) AS uuids
    WHERE NOT :'compact'::boolean
)

-- The object is written as json_object_agg writes it ({ "<uuid>" : <encounter>, … }), joined as
-- text from the stored documents' text: json_object_agg cost 3-4 µs per encounter, most of this
-- query's time, and a cast to json would read every document again. The value is that JSON text,
-- of type text.
SELECT
    coalesce(
        '{ '
        || string_agg(
            '"' || l.patient_uuid || '" : '
            || CASE
                -- The compact form is not stored: rendered, only when asked for.
                WHEN :'compact'::boolean
                    THEN (
                        SELECT c.document::text
                        FROM encounters_api.encounter_document(l::encounters.encounter, compact => TRUE) AS c (document)
                    )
                ELSE encounters_api.full_document(l::encounters.encounter, l.document, FALSE, k.uuids)
            END,
            ', '
            ORDER BY l.patient_uuid
        )
        || ' }',
        '{}'
    ) AS latest
FROM latest AS l
LEFT JOIN children AS k ON TRUE;
