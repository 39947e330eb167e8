-- Per patient, the latest open encounter at one of a list of locations (POST /dhos/v1/encounter/locations).
--
-- The patients are those with a top-level encounter open as of open_as_of at one of the
-- locations (encounters_api.open_encounters_at); for each, encounters_api.latest_encounter
-- among their encounters at those locations. No children, no deleted encounters.
-- Parameters:
--   location_ids  uuid[]       the locations, e.g. '{uuid1,uuid2}'
--   open_as_of    timestamptz  not discharged, or discharged later than this; 'infinity' = open now
--   compact       boolean      true: the compact form
-- Returns: one row, one column: a JSON array of encounters, one per patient, ordered by
--   patient uuid ([] when none). Read it with `psql -At … | jq .`
-- Example:
--   psql -At -v location_ids='{2126393f-c86b-4bf2-9f68-42bb03a7b68a}' -v open_as_of=infinity \
--     -v compact=true -f sql/queries/encounters/open_at_locations.sql
SELECT
    coalesce(
        json_agg(encounters_api.encounter_json(l, :'compact'::boolean) ORDER BY l.patient_uuid),
        '[]'::json
    ) AS encounters
FROM (
    SELECT DISTINCT o.patient_uuid
    FROM encounters_api.open_encounters_at(:'location_ids'::uuid[], :'open_as_of'::timestamptz) AS o
) AS p
CROSS JOIN LATERAL encounters_api.latest_encounter(
    p.patient_uuid, :'location_ids'::uuid[], :'open_as_of'::timestamptz
) AS l;
