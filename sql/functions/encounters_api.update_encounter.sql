-- encounters_api.update_encounter(encounter_id, body, caller, can_edit_ews) → (refusal, result)
-- Applies a PATCH body (docs/api.md "Update rules") to one encounter. Only the fields present in
-- the body change (absent ≠ null): null clears epr_encounter_id ('' too), encounter_type,
-- discharged_at, deleted_at; null score_system, spo2_scale or child_of_encounter_uuid leaves
-- them as they are (unlinking is DELETE's job). Returns (null, full form), or, when the
-- caller may not make the score change it asked for, (message, null): then the only row
-- written is the ews_change_failure audit event, and it commits (the caller answers 403).
--
-- Rules:
--   404 EN404  no such encounter.
--   403        score_system or spo2_scale would change and can_edit_ews is false (audited),
--              whatever spo2_scale value was asked for.
--   400 EN400  spo2_scale not 1 or 2 (for a caller who may change it).
--   422 EN422  child_of_encounter_uuid names no encounter.
--   400 EN400  child_of_encounter_uuid would make the encounter its own ancestor.
--   409 EN409  epr_encounter_id used by another non-deleted encounter, or the change leaves the
--              patient with two open local top-level encounters (unique indexes).
-- Writes, in one transaction:
--   - location_uuid changed: a location_history row for the previous location, arrived_at =
--     the latest departure recorded in its history (the previous move) or else admitted_at,
--     but never after now (a future admission gives a zero-length stay), departed_at = now.
--     The row lock serialises concurrent moves and "now" is read after it (clock_timestamp,
--     not the transaction start), so concurrent moves form a chain without gaps or overlaps.
--   - score_system/spo2_scale changed: a score_system_history row: previous_* = the values
--     before, score_system/spo2_scale = the values the request gave (null if not given).
--   - modified/modified_by on every successful call.
--   - events: score change → dhos.34837004 score_system_changed and dhos.DM000005 (an
--     observation-set marker: uuid, record_time, score_system, spo2_scale, created(_by),
--     modified(_by) from the encounter's new modified(_by), with the expanded encounter);
--     any updatable field changed → dhos.DM000007 and, unless the caller is
--     dhos-async-adapter, dhos.34837004 encounter_modified with [{field, old, new}].
-- Re-parenting takes a transaction-level advisory lock, so two concurrent re-parentings cannot
-- together form a cycle that neither saw.
-- requires: encounters_api.emit, encounters_api.encounter_json, encounters_api.updatable_values,
-- requires: encounters_api.raise_duplicate, encounters_api.descendant_uuids, encounters_api.iso_utc
-- requires: encounters_api.lock_encounter, encounters_api.spo2_scale
CREATE OR REPLACE FUNCTION encounters_api.update_encounter(
    encounter_id uuid,
    body jsonb,
    caller text,
    can_edit_ews boolean,
    OUT refusal text,
    OUT result jsonb
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, encounters_api, pg_temp
AS $$
DECLARE
    previous encounters.encounter;
    updated encounters.encounter;
    changed_at timestamptz;
    asked_score_system text := body ->> 'score_system';
    asked_spo2_scale numeric := (body ->> 'spo2_scale')::numeric;  -- any number: the permission is judged first
    score_change jsonb;
    modifications jsonb;
    rule text;
BEGIN
    previous := encounters_api.lock_encounter(encounter_id);
    changed_at := clock_timestamp();

    -- Only the updatable fields of the body apply; updatable_values names them.
    updated := jsonb_populate_record(previous, (
        SELECT coalesce(jsonb_object_agg(field.key, field.value), '{}')
        FROM jsonb_each(body) AS field
        WHERE encounters_api.updatable_values(previous) ? field.key AND field.key <> 'spo2_scale'
    ));
    updated.epr_encounter_id := nullif(updated.epr_encounter_id, '');
    updated.score_system := coalesce(asked_score_system, previous.score_system);
    updated.child_of_encounter_uuid := coalesce(
        updated.child_of_encounter_uuid, previous.child_of_encounter_uuid
    );

    IF (updated.score_system, coalesce(asked_spo2_scale, previous.spo2_scale))
        IS DISTINCT FROM (previous.score_system, previous.spo2_scale) THEN
        score_change := jsonb_build_object(
            'clinician_id', caller,
            'encounter_id', previous.uuid,
            'epr_encounter_id', previous.epr_encounter_id,
            'previous_score_system', previous.score_system,
            'previous_spo2_scale', previous.spo2_scale,
            'new_score_system', asked_score_system,
            'new_spo2_scale', asked_spo2_scale
        );
        IF NOT can_edit_ews THEN
            PERFORM encounters_api.emit(
                'dhos.34837004',
                jsonb_build_object('event_type', 'ews_change_failure', 'event_data', score_change),
                previous.uuid
            );
            refusal := 'changing score_system or spo2_scale needs the can_edit_ews permission';
            RETURN;
        END IF;
    END IF;
    updated.spo2_scale := coalesce(encounters_api.spo2_scale(asked_spo2_scale), previous.spo2_scale);

    IF updated.child_of_encounter_uuid IS DISTINCT FROM previous.child_of_encounter_uuid THEN
        PERFORM pg_advisory_xact_lock(hashtext('encounters.encounter.child_of_encounter_uuid'));
        IF NOT EXISTS (SELECT FROM encounters.encounter WHERE uuid = updated.child_of_encounter_uuid) THEN
            RAISE EXCEPTION USING ERRCODE = 'EN422',
                MESSAGE = format(
                    'child_of_encounter_uuid %s: no such encounter', updated.child_of_encounter_uuid
                );
        END IF;
        IF updated.child_of_encounter_uuid = previous.uuid
            OR encounters_api.descendant_uuids(previous.uuid, true)
            @> to_jsonb(updated.child_of_encounter_uuid) THEN
            RAISE EXCEPTION USING ERRCODE = 'EN400',
                MESSAGE = format(
                    'child_of_encounter_uuid %s would make encounter %s its own ancestor',
                    updated.child_of_encounter_uuid, previous.uuid
                );
        END IF;
    END IF;

    IF updated.location_uuid <> previous.location_uuid THEN
        INSERT INTO encounters.location_history (
            encounter_uuid, location_uuid, arrived_at, departed_at, created_by
        )
        SELECT
            previous.uuid,
            previous.location_uuid,
            least(coalesce(max(h.departed_at), updated.admitted_at), changed_at),
            changed_at,
            caller
        FROM encounters.location_history AS h
        WHERE h.encounter_uuid = previous.uuid;
    END IF;

    IF score_change IS NOT NULL THEN
        INSERT INTO encounters.score_system_history (
            encounter_uuid, changed_time, score_system, previous_score_system,
            spo2_scale, previous_spo2_scale, created_by, changed_by, modified_by
        )
        VALUES (
            previous.uuid, changed_at, asked_score_system, previous.score_system,
            asked_spo2_scale, previous.spo2_scale, caller, caller, caller
        );
    END IF;

    BEGIN
        UPDATE encounters.encounter
        SET
            epr_encounter_id = updated.epr_encounter_id,
            encounter_type = updated.encounter_type,
            admitted_at = updated.admitted_at,
            discharged_at = updated.discharged_at,
            deleted_at = updated.deleted_at,
            location_uuid = updated.location_uuid,
            dh_product_uuid = updated.dh_product_uuid,
            score_system = updated.score_system,
            patient_record_uuid = updated.patient_record_uuid,
            child_of_encounter_uuid = updated.child_of_encounter_uuid,
            spo2_scale = updated.spo2_scale,
            modified = changed_at,
            modified_by = caller
        WHERE uuid = previous.uuid
        RETURNING * INTO updated;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS rule = CONSTRAINT_NAME;
        PERFORM encounters_api.raise_duplicate(rule, updated);
    END;

    SELECT
        jsonb_agg(
            jsonb_build_object('field', was.key, 'old', was.value, 'new', now_is.value)
            ORDER BY was.key
        )
    INTO modifications
    FROM jsonb_each(encounters_api.updatable_values(previous)) AS was
    INNER JOIN jsonb_each(encounters_api.updatable_values(updated)) AS now_is ON now_is.key = was.key
    WHERE now_is.value <> was.value;

    IF score_change IS NOT NULL THEN
        PERFORM encounters_api.emit(
            'dhos.34837004',
            jsonb_build_object(
                'event_type', 'score_system_changed',
                'event_data', score_change || jsonb_build_object(
                    'modified', encounters_api.iso_utc(updated.modified),
                    'modified_by', updated.modified_by
                )
            ),
            updated.uuid
        );
        PERFORM encounters_api.emit(
            'dhos.DM000005',
            jsonb_build_object('actions', jsonb_build_array(jsonb_build_object(
                'name', 'process_observation_set',
                'data', jsonb_build_object(
                    'encounter', encounters_api.encounter_json(updated, false, true, false),
                    'observation_set', jsonb_build_object(
                        'uuid', gen_random_uuid(),
                        'record_time', encounters_api.iso_utc(updated.modified),
                        'score_system', updated.score_system,
                        'spo2_scale', updated.spo2_scale,
                        'created', encounters_api.iso_utc(updated.modified),
                        'created_by', updated.modified_by,
                        'modified', encounters_api.iso_utc(updated.modified),
                        'modified_by', updated.modified_by
                    )
                )
            ))),
            updated.uuid
        );
    END IF;
    IF modifications IS NOT NULL THEN
        PERFORM encounters_api.emit(
            'dhos.DM000007', jsonb_build_object('encounter_id', updated.uuid), updated.uuid
        );
        IF caller <> 'dhos-async-adapter' THEN
            PERFORM encounters_api.emit(
                'dhos.34837004',
                jsonb_build_object(
                    'event_type', 'encounter_modified',
                    'event_data', jsonb_build_object(
                        'clinician_id', caller,
                        'encounter_id', updated.uuid,
                        'modifications', modifications
                    )
                ),
                updated.uuid
            );
        END IF;
    END IF;
    result := updated.document::jsonb;  -- the full form, as the trigger encounter_document just stored it
END;
$$;

COMMENT ON FUNCTION encounters_api.update_encounter(uuid, jsonb, text, boolean) IS
'Applies a PATCH body with its history rows and events; returns (null, full form), or (refusal, null)
after recording the ews_change_failure audit event of a refused score change.';
