-- Per patient of a list, the latest open encounter (POST /dhos/v1/encounter/patients).
--
-- "Latest" is encounters_api.latest_encounter: top-level, not deleted, open as of open_as_of;
-- the open one first, then the newest admission, then the newest creation. Patients without
-- one are left out; a patient listed twice appears once. The full form is the encounter's stored
-- document (encounter.document, kept current by trigger; rendered here only if missing).
-- Parameters:
--   patient_ids  uuid[]       the patients, e.g. '{uuid1,uuid2}'
--   open_as_of   timestamptz  not discharged, or discharged later than this; 'infinity' = open now
--   compact      boolean      true: the compact form
-- Returns: one row, one column: a JSON array of encounters, one per patient, ordered by
--   patient uuid ([] when none). Read it with `psql -At … | jq .`
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v patient_ids='{2126393f-c86b-4bf2-9f68-42bb03a7b68a}' -v open_as_of=infinity \
--     -v compact=false -f sql/queries/encounters/open_for_patients.sql
SELECT
    coalesce(
        json_agg(
            CASE
                WHEN :'compact'::boolean THEN c.document::json
                ELSE coalesce(l.document, encounters_api.encounter_json(l)::json)
            END
            ORDER BY l.patient_uuid
        ),
        '[]'::json
    ) AS encounters
FROM (SELECT DISTINCT unnest(:'patient_ids'::uuid[]) AS patient_uuid) AS p
CROSS JOIN LATERAL encounters_api.latest_encounter(p.patient_uuid, NULL, :'open_as_of'::timestamptz) AS l
CROSS JOIN LATERAL encounters_api.encounter_document(l, compact => TRUE) AS c (document);
