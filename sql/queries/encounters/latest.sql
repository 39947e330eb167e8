-- A patient's latest encounter (GET /dhos/v2/encounter/latest).
--
-- "Latest" is encounters_api.latest_encounter: top-level, not deleted, open as of open_as_of;
-- the open one first, then the newest admission, then the newest creation.
-- Parameters:
--   patient_id  uuid         the patient
--   open_as_of  timestamptz  not discharged, or discharged later than this; '-infinity' = discharged or not
--   compact     boolean      true: the compact form
-- Returns: one row with the encounter as a JSON object (the full form carries
--   child_encounter_uuids; more than 10,000 → EN422, encounters_api.check_descendant_limit), or no
--   row when the patient has none. Read it with `psql -At … | jq .`
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v patient_id=2126393f-c86b-4bf2-9f68-42bb03a7b68a -v open_as_of=-infinity \
--     -v compact=false -f sql/queries/encounters/latest.sql
SELECT d.document AS encounter
FROM encounters_api.latest_encounter(:'patient_id'::uuid, NULL, :'open_as_of'::timestamptz) AS l
CROSS JOIN LATERAL encounters_api.encounter_document(l, :'compact'::boolean, FALSE, TRUE) AS d (document)
WHERE :'compact'::boolean OR encounters_api.check_descendant_limit(ARRAY[l.uuid], TRUE);
