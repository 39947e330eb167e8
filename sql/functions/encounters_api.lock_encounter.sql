-- encounters_api.lock_encounter(encounter_id) → encounters.encounter
-- The encounter, row-locked (FOR NO KEY UPDATE: its uuid never changes) until the caller's
-- transaction ends, or EN404 (→ 404) when there is none. Writers of one encounter take this lock
-- first: it serialises concurrent changes (a gap-free location history) and orders their outbox
-- messages per encounter, which the event relay relies on.
CREATE OR REPLACE FUNCTION encounters_api.lock_encounter(encounter_id uuid)
RETURNS encounters.encounter
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
DECLARE
    e encounters.encounter;
BEGIN
    SELECT * INTO e FROM encounters.encounter WHERE uuid = encounter_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'EN404', MESSAGE = format('encounter %s not found', encounter_id);
    END IF;
    RETURN e;
END;
$$;

COMMENT ON FUNCTION encounters_api.lock_encounter(uuid) IS
'The encounter, locked for the rest of the transaction; 404 (EN404) when it does not exist.';
