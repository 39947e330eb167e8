-- How many distinct patients have an open top-level encounter at each location of a list
-- (POST /dhos/v1/encounter/locations/patient_count).
--
-- Open as of open_as_of (encounters_api.open_encounters_at). A patient with open encounters at
-- two of the locations counts at both. Locations without any are left out.
-- Parameters:
--   location_ids  uuid[]       the locations, e.g. '{uuid1,uuid2}'
--   open_as_of    timestamptz  not discharged, or discharged later than this; 'infinity' = open now
-- Returns: one row, one column: a JSON object {location_uuid: number of patients} ({} when none).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v location_ids='{2126393f-c86b-4bf2-9f68-42bb03a7b68a}' -v open_as_of=infinity \
--     -f sql/queries/encounters/patient_count_per_location.sql
SELECT coalesce(json_object_agg(c.location_uuid, c.patients ORDER BY c.location_uuid), '{}'::json) AS patient_counts
FROM (
    SELECT
        o.location_uuid,
        count(DISTINCT o.patient_uuid) AS patients
    FROM encounters_api.open_encounters_at(:'location_ids'::uuid[], :'open_as_of'::timestamptz) AS o
    GROUP BY o.location_uuid
) AS c;
