-- encounters_api.merge_history(encounter_id) → jsonb
-- The record merges an encounter went through, oldest first:
-- [{record_uuid, patient_uuid, message_uuid, merged_at}] (the record and patient it had before
-- each merge). Shown for deleted encounters too: it is an audit trail.
-- A merge undone (encounters_api.undo_merge) is an entry of its own, after the merge's (which
-- stays as it was), with the same keys: the record and patient the encounter had before the undo
-- (where the merge had put it), the merge's message_uuid again, and when it was undone. So a
-- message_uuid that appears a second time marks the undo of that merge.
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
        ) ORDER BY m.merged_at, m.undo, m.id), '[]')
        FROM (
            SELECT h.id, FALSE AS undo, h.record_uuid, h.patient_uuid, h.message_uuid, h.merged_at
            FROM encounters.merge_history AS h
            WHERE h.encounter_uuid = encounter_id
            UNION ALL
            SELECT h.id, TRUE AS undo, u.record_uuid, u.patient_uuid, u.message_uuid, u.undone_at
            FROM encounters.merge_undo AS u
            INNER JOIN encounters.merge_history AS h USING (encounter_uuid, message_uuid)
            WHERE u.encounter_uuid = encounter_id
        ) AS m
    );
END;
$$;

COMMENT ON FUNCTION encounters_api.merge_history(uuid) IS
'An encounter''s record merges, oldest first, as a JSON array. Raises EN404.';
