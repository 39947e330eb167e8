-- Creates a list of encounters in one transaction, all or none (test and demo tooling); answers their uuids.
--
-- Parameters:
--   bodies          jsonb    a JSON array of create request bodies (docs/api.md "Create body")
--   first_position  bigint   the position of the array's first item, for error messages (1)
--   caller          text     caller id, written to created_by/modified_by
--   can_edit_ews    boolean  whether the caller may set spo2_scale other than 1
-- Returns: one row, one column: the new encounters' uuids in the order given (a JSON array).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v first_position=1 -v caller=seed -v can_edit_ews=false -f sql/queries/writes/create_encounters.sql \
--     -v bodies='[{"patient_uuid": "…", "location_uuid": "…", "patient_record_uuid": "…",
--                "dh_product_uuid": "…", "admitted_at": "2018-01-01T00:00:00Z", "score_system": "news2"}]'
SELECT encounters_api.create_encounters(
    :'bodies'::jsonb, :'first_position'::bigint, :'caller'::text, :'can_edit_ews'::boolean
);
