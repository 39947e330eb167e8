-- encounters_api.create_encounters(bodies, first_position, caller, can_edit_ews) → jsonb
-- Creates the encounters of a JSON array of create request bodies, in the array's order, each by
-- encounters_api.create_encounter (the same rules, the same events), all in one transaction: the
-- first refusal rolls the whole array back and is raised again with the same SQLSTATE, its
-- message prefixed by the item's position, counted from first_position (the caller's position of
-- the array's first item, when it sends a long list in parts), e.g. "item 3: the patient already
-- has an open local encounter". Returns the new encounters' uuids, in the order given.
-- For the platform's test and demo tooling (POST /encounter/bulk, served only with
-- ALLOW_DROP_DATA=true).
-- requires: encounters_api.create_encounter
CREATE OR REPLACE FUNCTION encounters_api.create_encounters(
    bodies jsonb,
    first_position bigint,
    caller text,
    can_edit_ews boolean
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, encounters_api, pg_temp
AS $$
DECLARE
    body jsonb;
    position bigint;
    created uuid[] := '{}'::uuid[];
    failed_state text;
    failed_message text;
BEGIN
    FOR body, position IN
        SELECT item.value, first_position + item.ordinality - 1
        FROM jsonb_array_elements(bodies) WITH ORDINALITY AS item
    LOOP
        created := created || (encounters_api.create_encounter(body, caller, can_edit_ews) ->> 'uuid')::uuid;
    END LOOP;
    RETURN to_jsonb(created);
EXCEPTION WHEN OTHERS THEN
    -- One handler around the whole loop: one subtransaction per call, not per item.
    GET STACKED DIAGNOSTICS failed_state = RETURNED_SQLSTATE, failed_message = MESSAGE_TEXT;
    RAISE EXCEPTION USING ERRCODE = failed_state, MESSAGE = format('item %s: %s', position, failed_message);
END;
$$;

COMMENT ON FUNCTION encounters_api.create_encounters(jsonb, bigint, text, boolean) IS
'Creates a list of encounters in one transaction (all or none); returns their uuids in order.';
