-- encounters_api.merge_encounters(body, caller) → jsonb {"total": n}
-- A patient-record merge: body {child_record_uuid, parent_record_uuid, parent_patient_uuid,
-- message_uuid}. Every encounter of the child record moves to the parent record and patient
-- (modified/modified_by set); each gets one merge_history row (its previous record and patient,
-- the message, the time, and the record and patient it moved to: encounters_api.undo_merge reads
-- them) and one dhos.DM000007 event. n counts the encounters this call moved.
--
-- Idempotent per message: an encounter already merged by this message_uuid is not touched
-- again, so a replay moves nothing and writes nothing. Concurrent identical merges: the patients
-- are locked, and a call that waited finds the encounters already on the parent record and skips
-- them (UNIQUE (encounter_uuid, message_uuid) is the last guard).
--   400 EN400  child and parent record are the same.
--   409 EN409  the merge would give the parent patient two open local top-level encounters
--              (a rule the schema enforces); nothing moves. Discharge or delete one first.
-- requires: encounters_api.emit, encounters_api.lock_patients
CREATE OR REPLACE FUNCTION encounters_api.merge_encounters(body jsonb, caller text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, encounters_api, pg_temp
AS $$
DECLARE
    child_record uuid := (body ->> 'child_record_uuid')::uuid;
    parent_record uuid := (body ->> 'parent_record_uuid')::uuid;
    parent_patient uuid := (body ->> 'parent_patient_uuid')::uuid;
    merge_message uuid := (body ->> 'message_uuid')::uuid;
    locked uuid[];  -- the patients whose locks this call holds
    moved uuid[];
    moved_patients uuid[];  -- their patients before the merge
BEGIN
    IF child_record = parent_record THEN
        RAISE EXCEPTION USING ERRCODE = 'EN400',
            MESSAGE = format(
                'child_record_uuid and parent_record_uuid are the same record (%s)', child_record
            );
    END IF;

    -- Lock order (encounters_api.lock_patients): first every patient this merge changes (those
    -- of the record's encounters, and the parent patient), then the rows, in uuid order.
    locked := ARRAY(SELECT e.patient_uuid FROM encounters.encounter AS e WHERE e.patient_record_uuid = child_record)
        || parent_patient;
    PERFORM encounters_api.lock_patients(locked);
    SELECT coalesce(array_agg(m.uuid ORDER BY m.uuid), '{}'), coalesce(array_agg(m.patient_uuid ORDER BY m.uuid), '{}')
    INTO moved, moved_patients
    FROM (
        SELECT e.uuid, e.patient_uuid
        FROM encounters.encounter AS e
        WHERE e.patient_record_uuid = child_record
            AND NOT EXISTS (
                SELECT FROM encounters.merge_history AS m
                WHERE m.encounter_uuid = e.uuid AND m.message_uuid = merge_message
            )
        ORDER BY e.uuid
        FOR NO KEY UPDATE
    ) AS m;
    -- An encounter of a patient whose lock this call does not hold joined the record meanwhile
    -- (created, or moved in by a PATCH or a merge): moving it now could deadlock. Start again.
    IF NOT moved_patients <@ locked THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = format('record %s changed while this merge waited; try again', child_record);
    END IF;

    WITH moved_row AS (
        UPDATE encounters.encounter AS e
        SET patient_record_uuid = parent_record, patient_uuid = parent_patient,
            modified = clock_timestamp(), modified_by = caller
        FROM unnest(moved, moved_patients) AS m (uuid, patient_uuid)
        WHERE e.uuid = m.uuid
        RETURNING e.uuid, m.patient_uuid
    )
    INSERT INTO encounters.merge_history (
        encounter_uuid, record_uuid, patient_uuid, message_uuid, parent_record_uuid, parent_patient_uuid
    )
    SELECT moved_row.uuid, child_record, moved_row.patient_uuid, merge_message, parent_record, parent_patient
    FROM moved_row
    ON CONFLICT (encounter_uuid, message_uuid) DO NOTHING;

    PERFORM encounters_api.emit('dhos.DM000007', jsonb_build_object('encounter_id', moved_uuid), moved_uuid)
    FROM unnest(moved) AS moved_uuid;
    RETURN jsonb_build_object('total', cardinality(moved));
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION USING ERRCODE = 'EN409',
        MESSAGE = format(
            'merging record %s into record %s would give patient %s two open local encounters; '
            'discharge or delete one first',
            child_record, parent_record, parent_patient
        );
END;
$$;

COMMENT ON FUNCTION encounters_api.merge_encounters(jsonb, text) IS
'Moves every encounter of a child patient record to the parent record and patient (merge history,
DM000007 events); idempotent per message. Returns {"total": n}.';
