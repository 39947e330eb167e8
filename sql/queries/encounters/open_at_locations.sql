-- Per patient, the latest open encounter at one of a list of locations (POST /dhos/v1/encounter/locations).
--
-- The encounters are those of encounters_api.open_encounters_at: top-level, open as of
-- open_as_of, at one of the locations; per patient, the latest of them by the order of
-- encounters_api.latest_encounter (the open one first, then the newest admission, then the
-- newest creation), picked with DISTINCT ON in one pass over the census rather than one
-- look-up per patient. No children, no deleted encounters. The full form is the encounter's
-- stored document (encounter.document, kept current by trigger; rendered here only if missing),
-- so that thousands of encounters are not rendered on every call.
-- Parameters:
--   location_ids  uuid[]       the locations, e.g. '{uuid1,uuid2}'
--   open_as_of    timestamptz  not discharged, or discharged later than this; 'infinity' = open now
--   compact       boolean      true: the compact form
-- Returns: one row, one column: a JSON array of encounters, one per patient, ordered by
--   patient uuid ([] when none). Read it with `psql -At … | jq .`
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v location_ids='{2126393f-c86b-4bf2-9f68-42bb03a7b68a}' -v open_as_of=infinity \
--     -v compact=true -f sql/queries/encounters/open_at_locations.sql
SELECT
    coalesce(
        json_agg(
            CASE
                WHEN :'compact'::boolean THEN c.document::json
                ELSE coalesce(l.document, encounters_api.encounter_json(l::encounters.encounter)::json)
            END
            ORDER BY l.patient_uuid
        ),
        '[]'::json
    ) AS encounters
FROM (
    SELECT DISTINCT ON (o.patient_uuid) o.*
    FROM encounters_api.open_encounters_at(:'location_ids'::uuid[], :'open_as_of'::timestamptz) AS o
    ORDER BY o.patient_uuid ASC, o.discharged_at IS NULL DESC, o.admitted_at DESC, o.created DESC, o.uuid DESC
) AS l
CROSS JOIN LATERAL encounters_api.encounter_document(l::encounters.encounter, compact => TRUE) AS c (document);
