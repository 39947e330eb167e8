-- encounters_api.encounter_history(encounter_id) → jsonb
-- Every version of an encounter, oldest first, deleted encounters included:
-- [{version, modified, modified_by, encounter}], `encounter` the expanded full form as it was
-- (the full form of that version plus created_by, and modified/modified_by as they were).
-- Versions are kept from migration 0006 on (encounters.encounter_history, trigger
-- encounter_keep_version); the current version of an encounter last changed before it is read
-- from the encounter itself.
--   404 EN404  no such encounter.
-- plpgsql: `migrate rollback` re-applies the function files on an older schema, without the table.
-- requires: encounters_api.iso_utc, encounters_api.encounter_json, encounters_api.encounter_version
CREATE OR REPLACE FUNCTION encounters_api.encounter_history(encounter_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
DECLARE
    e encounters.encounter;
BEGIN
    SELECT * INTO e FROM encounters.encounter WHERE uuid = encounter_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'EN404', MESSAGE = format('encounter %s not found', encounter_id);
    END IF;
    RETURN (
        SELECT coalesce(jsonb_agg(jsonb_build_object(
            'version', v.version,
            'modified', encounters_api.iso_utc(v.modified),
            'modified_by', v.modified_by,
            'encounter', v.document || jsonb_build_object(
                'created_by', e.created_by,
                'modified', encounters_api.iso_utc(v.modified),
                'modified_by', v.modified_by
            )
        ) ORDER BY v.version), '[]')
        FROM (
            SELECT h.version, h.modified, h.modified_by, h.document::jsonb AS document
            FROM encounters.encounter_history AS h
            WHERE h.encounter_uuid = encounter_id
            UNION ALL
            SELECT
                encounters_api.encounter_version(e), e.modified, e.modified_by,
                coalesce(e.document::jsonb, encounters_api.encounter_json(e))
            WHERE NOT EXISTS (
                SELECT FROM encounters.encounter_history AS h
                WHERE h.encounter_uuid = encounter_id AND h.version = encounters_api.encounter_version(e)
            )
        ) AS v
    );
END;
$$;

COMMENT ON FUNCTION encounters_api.encounter_history(uuid) IS
'Every version of an encounter, oldest first: [{version, modified, modified_by, encounter}]. Raises EN404.';
