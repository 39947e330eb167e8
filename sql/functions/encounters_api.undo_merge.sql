-- encounters_api.undo_merge(body, caller) → jsonb {"total": n}
-- Undoes a patient-record merge: body {message_uuid} (the merge's message). Every encounter that
-- merge moved goes back to the record and patient it had before (modified/modified_by set), in
-- this one transaction; each gets one merge_undo row (the record and patient it had before the
-- undo, the time: GET …/merge_history shows it as an entry of its own) and one dhos.DM000007
-- event. Versions, kept history and the change feed see the move like any write (the encounter
-- triggers). n counts the encounters this call moved back.
--
-- Idempotent per message: an encounter whose move by this merge is already undone is not touched
-- again, so a second undo moves nothing and answers {"total": 0}.
--   404 EN404  no merge with this message_uuid moved any encounter.
--   409 EN409  nothing moves if any of the merge's encounters has moved to another record or
--              patient since the merge (a PATCH of patient_record_uuid, a later merge), if the
--              merge was recorded before migration 0007 (where it put the encounters is not
--              known), or if moving back would give a patient two open local top-level encounters.
-- Locks: as a merge (encounters_api.lock_patients), first every patient this undo changes (those
-- the encounters have now and those they go back to), then the rows, in uuid order; so an undo
-- and a merge or PATCH of the same patients wait for each other and never deadlock.
-- requires: encounters_api.emit, encounters_api.lock_patients
CREATE OR REPLACE FUNCTION encounters_api.undo_merge(body jsonb, caller text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, encounters_api, pg_temp
AS $$
DECLARE
    merge_message uuid := (body ->> 'message_uuid')::uuid;
    locked uuid[];  -- the patients whose locks this call holds
    moved uuid[];
    moved_on text;  -- the encounters that moved since the merge, described
    crowded text;  -- the patients that would get two open local encounters
BEGIN
    IF NOT EXISTS (SELECT FROM encounters.merge_history AS m WHERE m.message_uuid = merge_message) THEN
        RAISE EXCEPTION USING ERRCODE = 'EN404', MESSAGE = format('merge message %s not found', merge_message);
    END IF;

    locked := ARRAY(
        SELECT p.patient_uuid
        FROM encounters.merge_history AS m
        INNER JOIN encounters.encounter AS e ON m.encounter_uuid = e.uuid
        CROSS JOIN LATERAL (VALUES (m.patient_uuid), (e.patient_uuid)) AS p (patient_uuid)
        WHERE m.message_uuid = merge_message
    );
    PERFORM encounters_api.lock_patients(locked);

    -- The merge's encounters not moved back yet, row-locked; from here on, exactly these.
    SELECT coalesce(array_agg(u.uuid ORDER BY u.uuid), '{}')
    INTO moved
    FROM (
        SELECT e.uuid
        FROM encounters.merge_history AS m
        INNER JOIN encounters.encounter AS e ON m.encounter_uuid = e.uuid
        WHERE m.message_uuid = merge_message
            AND NOT EXISTS (
                SELECT FROM encounters.merge_undo AS u
                WHERE u.encounter_uuid = m.encounter_uuid AND u.message_uuid = m.message_uuid
            )
        ORDER BY e.uuid
        FOR NO KEY UPDATE OF e
    ) AS u;
    -- An encounter moved to a patient whose lock this call does not hold (a merge committed
    -- meanwhile, or a replay of this one moved one more): changing it now could deadlock. Start again.
    IF EXISTS (
        SELECT FROM encounters.merge_history AS m
        INNER JOIN encounters.encounter AS e ON m.encounter_uuid = e.uuid
        WHERE m.message_uuid = merge_message AND e.uuid = ANY(moved)
            AND NOT (ARRAY[e.patient_uuid, m.patient_uuid] <@ locked)
    ) THEN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = format('the encounters of merge %s changed while its undo waited; try again', merge_message);
    END IF;

    SELECT string_agg(
        CASE
            WHEN m.parent_record_uuid IS NULL
                THEN format('encounter %s was merged before merges recorded where they moved encounters', e.uuid)
            ELSE format(
                'encounter %s is now on record %s, patient %s (the merge moved it to record %s, patient %s)',
                e.uuid, e.patient_record_uuid, e.patient_uuid, m.parent_record_uuid, m.parent_patient_uuid
            )
        END, '; ' ORDER BY e.uuid
    )
    INTO moved_on
    FROM encounters.merge_history AS m
    INNER JOIN encounters.encounter AS e ON m.encounter_uuid = e.uuid
    WHERE m.message_uuid = merge_message AND e.uuid = ANY(moved)
        AND (e.patient_record_uuid, e.patient_uuid) IS DISTINCT FROM (m.parent_record_uuid, m.parent_patient_uuid);
    IF moved_on IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'EN409',
            MESSAGE = format('merge %s cannot be undone, nothing moved: %s', merge_message, moved_on);
    END IF;

    BEGIN
        WITH moved_back AS (
            UPDATE encounters.encounter AS e
            SET patient_record_uuid = m.record_uuid, patient_uuid = m.patient_uuid,
                modified = clock_timestamp(), modified_by = caller
            FROM encounters.merge_history AS m
            WHERE m.encounter_uuid = e.uuid AND m.message_uuid = merge_message AND e.uuid = ANY(moved)
            RETURNING e.uuid, m.parent_record_uuid, m.parent_patient_uuid
        )
        INSERT INTO encounters.merge_undo (encounter_uuid, message_uuid, record_uuid, patient_uuid)
        SELECT moved_back.uuid, merge_message, moved_back.parent_record_uuid, moved_back.parent_patient_uuid
        FROM moved_back;
    EXCEPTION WHEN unique_violation THEN
        -- encounter_one_open_local_key. The update is undone: name the patients from the state
        -- before it, each with the open local encounter it already has.
        SELECT string_agg(DISTINCT format('%s (encounter %s)', other.patient_uuid, other.uuid), ', ')
        INTO crowded
        FROM encounters.merge_history AS m
        INNER JOIN encounters.encounter AS e ON m.encounter_uuid = e.uuid
        INNER JOIN encounters.encounter AS other ON m.patient_uuid = other.patient_uuid
        WHERE m.message_uuid = merge_message AND e.uuid = ANY(moved)
            AND e.epr_encounter_id IS NULL AND e.child_of_encounter_uuid IS NULL
            AND e.discharged_at IS NULL AND e.deleted_at IS NULL
            AND other.epr_encounter_id IS NULL AND other.child_of_encounter_uuid IS NULL
            AND other.discharged_at IS NULL AND other.deleted_at IS NULL;
        RAISE EXCEPTION USING ERRCODE = 'EN409',
            MESSAGE = format(
                'undoing merge %s would give patient %s two open local encounters; '
                'discharge or delete one first',
                merge_message, crowded
            );
    END;

    PERFORM encounters_api.emit('dhos.DM000007', jsonb_build_object('encounter_id', moved_uuid), moved_uuid)
    FROM unnest(moved) AS moved_uuid;
    RETURN jsonb_build_object('total', cardinality(moved));
END;
$$;

COMMENT ON FUNCTION encounters_api.undo_merge(jsonb, text) IS
'Moves every encounter a merge (by its message) moved back to its record and patient before it (merge undo rows, '
'DM000007 events); refuses if one has moved since. Idempotent per message. Returns {"total": n}.';
