-- encounters_api.encounter_document(e, compact, expanded, with_children) → one row: jsonb
-- The one definition of an encounter's JSON (docs/api.md "Data"): the full form, or the compact
-- form; expanded adds created/created_by/modified/modified_by; with_children adds
-- child_encounter_uuids (every descendant, deleted ones included).
-- A set-returning LANGUAGE sql function of one SELECT (always exactly one row) so that the
-- planner inlines it where a query joins it laterally, once per encounter
-- (`CROSS JOIN LATERAL encounters_api.encounter_document(e, …) AS d`): the history look-ups
-- become part of that query's plan, planned once, instead of a function planned and started
-- per encounter. encounters_api.encounter_json is its scalar form, for one encounter.
-- requires: encounters_api.iso_utc, encounters_api.descendants, encounters_api.location_visit_json
CREATE OR REPLACE FUNCTION encounters_api.encounter_document(
    e encounters.encounter,
    compact boolean DEFAULT FALSE,
    expanded boolean DEFAULT FALSE,
    with_children boolean DEFAULT FALSE
)
RETURNS SETOF jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
ROWS 1
BEGIN ATOMIC
    SELECT
        jsonb_build_object(
            'uuid', e.uuid,
            'epr_encounter_id', e.epr_encounter_id,
            'admitted_at', encounters_api.iso_utc(e.admitted_at),
            'discharged_at', encounters_api.iso_utc(e.discharged_at),
            'deleted_at', encounters_api.iso_utc(e.deleted_at),
            'location_uuid', e.location_uuid,
            'patient_uuid', e.patient_uuid,
            'patient_record_uuid', e.patient_record_uuid
        )
        || CASE
            WHEN compact THEN '{}'::jsonb
            ELSE
                jsonb_build_object(
                    'encounter_type', e.encounter_type,
                    'score_system', e.score_system,
                    'spo2_scale', e.spo2_scale,
                    'dh_product', jsonb_build_array(jsonb_build_object('uuid', e.dh_product_uuid)),
                    'created', encounters_api.iso_utc(e.created),
                    'score_system_history', (
                        SELECT
                            coalesce(jsonb_agg(jsonb_build_object(
                                'uuid', h.uuid,
                                'changed_time', encounters_api.iso_utc(h.changed_time),
                                'score_system', h.score_system,
                                'previous_score_system', h.previous_score_system,
                                'spo2_scale', h.spo2_scale,
                                'previous_spo2_scale', h.previous_spo2_scale,
                                'created_by', h.created_by,
                                'changed_by', h.changed_by
                            ) ORDER BY h.changed_time, h.created), '[]'::jsonb)
                        FROM encounters.score_system_history AS h
                        WHERE h.encounter_uuid = e.uuid
                    ),
                    'location_history', (
                        SELECT
                            coalesce(
                                jsonb_agg(encounters_api.location_visit_json(l) ORDER BY l.arrived_at, l.id),
                                '[]'::jsonb
                            )
                        FROM encounters.location_history AS l
                        WHERE l.encounter_uuid = e.uuid
                    )
                )
                || CASE
                    WHEN e.child_of_encounter_uuid IS NULL THEN '{}'::jsonb
                    ELSE jsonb_build_object('child_of_encounter_uuid', e.child_of_encounter_uuid)
                END
                || CASE
                    WHEN NOT with_children THEN '{}'::jsonb
                    -- as encounters_api.descendant_uuids(e.uuid, true), written out so that it is inlined
                    ELSE jsonb_build_object('child_encounter_uuids', (
                        SELECT coalesce(jsonb_agg(d.uuid ORDER BY d.created, d.uuid), '[]'::jsonb)
                        FROM encounters_api.descendants(e.uuid, TRUE) AS d
                    ))
                END
        END
        || CASE
            WHEN NOT expanded THEN '{}'::jsonb
            ELSE
                jsonb_build_object(
                    'created', encounters_api.iso_utc(e.created),
                    'created_by', e.created_by,
                    'modified', encounters_api.iso_utc(e.modified),
                    'modified_by', e.modified_by
                )
        END;
END;

COMMENT ON FUNCTION encounters_api.encounter_document(encounters.encounter, boolean, boolean, boolean) IS
'One encounter as the API renders it (one row): full or compact form, optionally expanded and with '
'child_encounter_uuids. Join it laterally; encounter_json is the scalar form.';
