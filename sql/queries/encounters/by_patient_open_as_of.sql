-- A patient's latest encounter open as of a time, as a list (GET /dhos/v2/encounter?open_as_of=…).
--
-- "Latest" is encounters_api.latest_encounter: top-level, not deleted, open as of the time;
-- the open one first, then the newest admission, then the newest creation. An EPR encounter id,
-- when given, must also match that encounter (else the list is empty).
-- Parameters:
--   patient_id        uuid         the patient
--   epr_encounter_id  text         the EPR encounter id; '' = any
--   open_as_of        timestamptz  not discharged, or discharged later than this
--   compact           boolean      true: the compact form
--   expanded          boolean      true: add created, created_by, modified, modified_by
-- Returns: one row, one column: a JSON array of at most one encounter (the full form carries
--   child_encounter_uuids; more than 10,000 → EN422, encounters_api.check_descendant_limit). Read it with `psql -At … | jq .`
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v patient_id=2126393f-c86b-4bf2-9f68-42bb03a7b68a -v epr_encounter_id= \
--     -v open_as_of=2018-01-01T00:00:00Z -v compact=false -v expanded=false \
--     -f sql/queries/encounters/by_patient_open_as_of.sql
SELECT coalesce(json_agg(d.document), '[]'::json) AS encounters
FROM encounters_api.latest_encounter(:'patient_id'::uuid, NULL, :'open_as_of'::timestamptz) AS l
CROSS JOIN LATERAL encounters_api.encounter_document(l, :'compact'::boolean, :'expanded'::boolean, TRUE) AS d (document)
WHERE
    (:'epr_encounter_id'::text = '' OR l.epr_encounter_id = :'epr_encounter_id'::text)
    AND (:'compact'::boolean OR encounters_api.check_descendant_limit(ARRAY[l.uuid], TRUE));
