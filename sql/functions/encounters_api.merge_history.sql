-- encounters_api.merge_history(encounter_id) → jsonb
-- The record merges an encounter went through, oldest first:
-- [{record_uuid, patient_uuid, message_uuid, merged_at}] (the record and patient it had before
-- each merge). Shown for deleted encounters too: it is an audit trail.
--   404 EN404  no such encounter.
-- requires: encounters_api.iso_utc
CREATE OR REPLACE FUNCTION encounters_api.merge_history(encounter_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM encounters.encounter WHERE uuid = encounter_id) THEN
        RAISE EXCEPTION USING ERRCODE = 'EN404', MESSAGE = format('encounter %s not found', encounter_id);
    END IF;
    RETURN (
        SELECT coalesce(jsonb_agg(jsonb_build_object(
            'record_uuid', m.record_uuid,
            'patient_uuid', m.patient_uuid,
            'message_uuid', m.message_uuid,
            'merged_at', encounters_api.iso_utc(m.merged_at)
        ) ORDER BY m.merged_at, m.id), '[]')
        FROM encounters.merge_history AS m
        WHERE m.encounter_uuid = encounter_id
    );
END;
$$;

COMMENT ON FUNCTION encounters_api.merge_history(uuid) IS
'An encounter''s record merges, oldest first, as a JSON array. Raises EN404.';
