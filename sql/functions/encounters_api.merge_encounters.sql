-- encounters_api.merge_encounters(body, caller) → jsonb {"total": n}
-- A patient-record merge: body {child_record_uuid, parent_record_uuid, parent_patient_uuid,
-- message_uuid}. Every encounter of the child record moves to the parent record and patient
-- (modified/modified_by set); each gets one merge_history row (its previous record and patient,
-- the message, the time) and one dhos.DM000007 event. n counts the encounters this call moved.
--
-- Idempotent per message: an encounter already merged by this message_uuid is not touched
-- again, so a replay moves nothing and writes nothing. Concurrent identical merges: the rows
-- are locked, and a call that waited finds them already on the parent record and skips them
-- (UNIQUE (encounter_uuid, message_uuid) is the last guard).
--   400 EN400  child and parent record are the same.
--   409 EN409  the merge would give the parent patient two open local top-level encounters
--              (a rule the schema enforces); nothing moves. Discharge or delete one first.
-- requires: encounters_api.emit
CREATE OR REPLACE FUNCTION encounters_api.merge_encounters(body jsonb, caller text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
DECLARE
    child_record uuid := body ->> 'child_record_uuid';
    parent_record uuid := body ->> 'parent_record_uuid';
    parent_patient uuid := body ->> 'parent_patient_uuid';
    merge_message uuid := body ->> 'message_uuid';
    moved uuid[];
BEGIN
    IF child_record = parent_record THEN
        RAISE EXCEPTION USING ERRCODE = 'EN400',
            MESSAGE = format(
                'child_record_uuid and parent_record_uuid are the same record (%s)', child_record
            );
    END IF;

    WITH moving AS (
        SELECT e.uuid, e.patient_record_uuid, e.patient_uuid
        FROM encounters.encounter AS e
        WHERE e.patient_record_uuid = child_record
            AND NOT EXISTS (
                SELECT FROM encounters.merge_history AS m
                WHERE m.encounter_uuid = e.uuid AND m.message_uuid = merge_message
            )
        ORDER BY e.uuid  -- one lock order for every merge: concurrent merges wait, never deadlock
        FOR NO KEY UPDATE
    ),
    moved_row AS (
        UPDATE encounters.encounter AS e
        SET patient_record_uuid = parent_record, patient_uuid = parent_patient,
            modified = clock_timestamp(), modified_by = caller
        FROM moving
        WHERE e.uuid = moving.uuid
        RETURNING e.uuid, moving.patient_record_uuid, moving.patient_uuid
    ),
    history AS (
        INSERT INTO encounters.merge_history (encounter_uuid, record_uuid, patient_uuid, message_uuid)
        SELECT moved_row.uuid, moved_row.patient_record_uuid, moved_row.patient_uuid, merge_message
        FROM moved_row
        ON CONFLICT (encounter_uuid, message_uuid) DO NOTHING
    )
    SELECT coalesce(array_agg(moved_row.uuid ORDER BY moved_row.uuid), '{}') INTO moved FROM moved_row;

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
