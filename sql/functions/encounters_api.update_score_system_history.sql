-- encounters_api.update_score_system_history(history_uuid, body, caller) → jsonb
-- Corrects when a score system change took effect: body {"changed_time": datetime}. Sets the
-- entry's changed_time and modified/modified_by; the encounter itself is not modified and no
-- event is recorded (the contract lists none). Returns the entry as the full form renders it.
--   404 EN404  no such score system history entry.
-- requires: encounters_api.encounter_json, encounters_api.lock_encounter
CREATE OR REPLACE FUNCTION encounters_api.update_score_system_history(history_uuid uuid, body jsonb, caller text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, encounters_api, pg_temp
AS $$
DECLARE
    owner_uuid uuid;
BEGIN
    -- The entry's encounter is written too (its stored document): lock it first, as every writer
    -- of an encounter does (encounters_api.lock_encounter).
    SELECT encounter_uuid INTO owner_uuid FROM encounters.score_system_history WHERE uuid = history_uuid;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'EN404',
            MESSAGE = format('score system history entry %s not found', history_uuid);
    END IF;
    PERFORM encounters_api.lock_encounter(owner_uuid);
    UPDATE encounters.score_system_history
    SET changed_time = (body ->> 'changed_time')::timestamptz, modified = clock_timestamp(), modified_by = caller
    WHERE uuid = history_uuid;
    -- Rendered by encounter_json, so the entry has the one shape the API uses everywhere.
    RETURN (
        SELECT entry
        FROM encounters.encounter AS e
        CROSS JOIN LATERAL jsonb_array_elements(encounters_api.encounter_json(e) -> 'score_system_history') AS entry
        WHERE e.uuid = owner_uuid AND entry ->> 'uuid' = history_uuid::text
    );
END;
$$;

COMMENT ON FUNCTION encounters_api.update_score_system_history(uuid, jsonb, text) IS
'Sets a score system history entry''s changed_time; returns the entry. Raises EN404.';
