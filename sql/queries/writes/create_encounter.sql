-- Creates an encounter (with its location history and DM000007 event, in one transaction); answers the full form.
--
-- Parameters:
--   body          jsonb    the create request body (docs/api.md "Create body")
--   caller        text     caller id, written to created_by/modified_by
--   can_edit_ews  boolean  whether the caller may set spo2_scale other than 1
-- Returns: one row: the new encounter in the full form (JSON), and its version (the ETag): 1, as
--   every new encounter's (trigger encounter_track_change).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v caller=analyst -v can_edit_ews=false -f sql/queries/writes/create_encounter.sql \
--     -v body='{"patient_uuid": "…", "location_uuid": "…", "patient_record_uuid": "…",
--              "dh_product_uuid": "…", "admitted_at": "2018-01-01T00:00:00Z", "score_system": "news2"}'
SELECT
    c.encounter,
    1::bigint AS version
FROM encounters_api.create_encounter(:'body'::jsonb, :'caller'::text, :'can_edit_ews'::boolean) AS c (encounter);
