-- encounters_api.create_encounter(body, caller, can_edit_ews) → jsonb
-- Creates an encounter from a create request body (docs/api.md "Create body"; fields named as the
-- columns, location_history an optional list of {location_uuid, arrived_at, departed_at}) and
-- returns it in the full form. In one transaction: the encounter, its location history rows,
-- and the dhos.DM000007 event.
--
-- Rules, checked in this order:
--   403 EN403  spo2_scale other than 1 without can_edit_ews, whatever the value. Nothing is
--              written, not even an audit event: the contract audits refused changes of an existing
--              encounter only.
--   400 EN400  spo2_scale not 1 or 2 (for a caller who may set it).
--   422 EN422  child_of_encounter_uuid names no encounter.
--   400 EN400  a location_history entry that departs before it arrives.
--   409 EN409  epr_encounter_id already used by a non-deleted encounter; or the new encounter
--              is local (epr_encounter_id null or '') and the patient already has an open
--              local top-level encounter. Checked first for a precise message (under the
--              patient's lock, so concurrent creates for one patient take turns); the unique
--              indexes refuse the loser of a concurrent race on an EPR id, with the same message.
-- spo2_scale absent or null means 1.
-- requires: encounters_api.emit, encounters_api.encounter_json, encounters_api.duplicate_message,
-- requires: encounters_api.raise_duplicate, encounters_api.lock_patients, encounters_api.spo2_scale
CREATE OR REPLACE FUNCTION encounters_api.create_encounter(
    body jsonb,
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
    -- spo2_scale is taken as any number, so that the permission is judged before the value.
    e encounters.encounter := jsonb_populate_record(NULL::encounters.encounter, body - 'spo2_scale');
    asked_spo2_scale numeric := coalesce(body ->> 'spo2_scale', '1')::numeric;
    history encounters.location_history[] := ARRAY(
        SELECT h FROM jsonb_populate_recordset(
            NULL::encounters.location_history, nullif(body -> 'location_history', 'null')
        ) AS h
    );
    rule text;
    clash text;
BEGIN
    e.epr_encounter_id := nullif(e.epr_encounter_id, '');

    IF asked_spo2_scale <> 1 AND NOT can_edit_ews THEN
        RAISE EXCEPTION USING ERRCODE = 'EN403',
            MESSAGE = format(
                'creating an encounter with spo2_scale %s needs the can_edit_ews permission', asked_spo2_scale
            );
    END IF;
    e.spo2_scale := encounters_api.spo2_scale(asked_spo2_scale);
    IF e.child_of_encounter_uuid IS NOT NULL
        AND NOT EXISTS (SELECT FROM encounters.encounter WHERE uuid = e.child_of_encounter_uuid) THEN
        RAISE EXCEPTION USING ERRCODE = 'EN422',
            MESSAGE = format('child_of_encounter_uuid %s: no such encounter', e.child_of_encounter_uuid);
    END IF;
    IF EXISTS (SELECT FROM unnest(history) AS h WHERE h.departed_at < h.arrived_at) THEN
        RAISE EXCEPTION USING ERRCODE = 'EN400',
            MESSAGE = 'location_history: an entry has departed_at before arrived_at';
    END IF;
    -- The patient's lock first (encounters_api.lock_patients), as every writer of a patient's
    -- encounters takes it: the one-open-local check below is then settled, not a race.
    PERFORM encounters_api.lock_patients(ARRAY[e.patient_uuid]);
    FOREACH rule IN ARRAY ARRAY['encounter_live_epr_id_key', 'encounter_one_open_local_key'] LOOP
        clash := encounters_api.duplicate_message(rule, e);
        IF clash IS NOT NULL THEN
            RAISE EXCEPTION USING ERRCODE = 'EN409', MESSAGE = clash;
        END IF;
    END LOOP;

    BEGIN
        INSERT INTO encounters.encounter (
            epr_encounter_id, encounter_type, admitted_at, discharged_at, deleted_at,
            location_uuid, patient_uuid, patient_record_uuid, dh_product_uuid,
            score_system, spo2_scale, child_of_encounter_uuid, created_by, modified_by
        )
        VALUES (
            e.epr_encounter_id, e.encounter_type, e.admitted_at, e.discharged_at, e.deleted_at,
            e.location_uuid, e.patient_uuid, e.patient_record_uuid, e.dh_product_uuid,
            e.score_system, e.spo2_scale, e.child_of_encounter_uuid, caller, caller
        )
        RETURNING * INTO e;
    EXCEPTION WHEN unique_violation THEN
        GET STACKED DIAGNOSTICS rule = CONSTRAINT_NAME;
        PERFORM encounters_api.raise_duplicate(rule, e);
    END;

    INSERT INTO encounters.location_history (encounter_uuid, location_uuid, arrived_at, departed_at, created_by)
    SELECT e.uuid, h.location_uuid, h.arrived_at, h.departed_at, caller
    FROM unnest(history) AS h;

    PERFORM encounters_api.emit('dhos.DM000007', jsonb_build_object('encounter_id', e.uuid), e.uuid);
    RETURN encounters_api.encounter_json(e);
END;
$$;

COMMENT ON FUNCTION encounters_api.create_encounter(jsonb, text, boolean) IS
'Creates an encounter (and its location history, DM000007 event) from a create body; returns the full form.';
