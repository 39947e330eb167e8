-- encounters_api.fhir_encounter_document(e, epr_identifier_system, document) → one row: jsonb
-- One encounter as a FHIR R4 Encounter resource: the one definition of it (the /fhir/R4 routes
-- answer it; encounters_api.fhir_encounter is its scalar form, for analysts and single reads).
-- A set-returning LANGUAGE sql function of one SELECT (always one row), so that the planner
-- inlines it where a query joins it laterally (`CROSS JOIN LATERAL
-- encounters_api.fhir_encounter_document(e, …) AS f`): a function call per resource cost a
-- third of a 1,000-entry page. The mapping, and why (docs/api.md "FHIR"):
-- - id: the uuid; meta.lastUpdated: modified; meta.versionId: the version
--   (encounters_api.encounter_version, the ETag of the /dhos and /fhir reads).
-- - identifier: the EPR id (none for a local encounter), system epr_identifier_system (the
--   service passes FHIR_EPR_IDENTIFIER_SYSTEM), use official.
-- - status: deleted → entered-in-error, discharged → finished, else in-progress.
-- - class: a v3-ActCode for the encounter types that have one (INPATIENT → IMP, …, any case),
--   else v3-NullFlavor UNK (class is required); type[0].text keeps encounter_type as it is.
-- - subject: Patient/<patient_uuid>; period: admitted_at to discharged_at (no end while open).
-- - location[]: each location history entry, oldest first, completed, over its stay; then the
--   current location, active while the encounter is in progress (else completed, ending at
--   discharge), from the latest departure (or admission) on.
-- - partOf: Encounter/<child_of_encounter_uuid>.
-- - extension, for what FHIR has no element for, one URL each under
--   http://encounters-service/fhir/StructureDefinition/: score-system (valueString),
--   spo2-scale (valuePositiveInt), dh-product and patient-record (valueUuid, urn:uuid:…), and
--   score-system-change, one per score system history entry, oldest first, with the
--   extensions uuid, changedTime, scoreSystem, previousScoreSystem, spo2Scale,
--   previousSpo2Scale, createdBy, changedBy (those with a value).
-- The histories come from `document`, the encounter's full form: the query files pass the stored
-- one (encounter.document, kept current by trigger), so that no history rows are read; without
-- it (null) the full form is rendered from the tables. (The column is not read here: this file is
-- also applied to a schema rolled back to before it.)
-- requires: encounters_api.iso_utc, encounters_api.encounter_json, encounters_api.fhir_extension
-- requires: encounters_api.encounter_version
CREATE OR REPLACE FUNCTION encounters_api.fhir_encounter_document(
    e encounters.encounter, epr_identifier_system text, document json DEFAULT NULL
)
RETURNS SETOF jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
ROWS 1
BEGIN ATOMIC
    SELECT
        jsonb_strip_nulls(jsonb_build_object(
            'resourceType', 'Encounter',
            'id', e.uuid,
            'meta', jsonb_build_object(
                'versionId', encounters_api.encounter_version(e)::text,
                'lastUpdated', encounters_api.iso_utc(e.modified)
            ),
            'extension', to_jsonb(array_remove(
                ARRAY[
                    encounters_api.fhir_extension(d.url || 'score-system', 'String', nullif(e.score_system, '')),
                    encounters_api.fhir_extension(d.url || 'spo2-scale', 'PositiveInt', e.spo2_scale),
                    encounters_api.fhir_extension(d.url || 'dh-product', 'Uuid', 'urn:uuid:' || e.dh_product_uuid),
                    encounters_api.fhir_extension(
                        d.url || 'patient-record', 'Uuid', 'urn:uuid:' || e.patient_record_uuid
                    )
                ]
                || (
                    SELECT
                        array_agg(jsonb_build_object(
                            'url', d.url || 'score-system-change',
                            'extension', to_jsonb(array_remove(ARRAY[
                                encounters_api.fhir_extension('uuid', 'Uuid', 'urn:uuid:' || (h.entry ->> 'uuid')),
                                encounters_api.fhir_extension('changedTime', 'DateTime', h.entry ->> 'changed_time'),
                                encounters_api.fhir_extension(
                                    'scoreSystem', 'String', nullif(h.entry ->> 'score_system', '')
                                ),
                                encounters_api.fhir_extension(
                                    'previousScoreSystem', 'String', nullif(h.entry ->> 'previous_score_system', '')
                                ),
                                encounters_api.fhir_extension(
                                    'spo2Scale', 'PositiveInt', (h.entry ->> 'spo2_scale')::integer
                                ),
                                encounters_api.fhir_extension(
                                    'previousSpo2Scale', 'PositiveInt', (h.entry ->> 'previous_spo2_scale')::integer
                                ),
                                encounters_api.fhir_extension(
                                    'createdBy', 'String', nullif(h.entry ->> 'created_by', '')
                                ),
                                encounters_api.fhir_extension(
                                    'changedBy', 'String', nullif(h.entry ->> 'changed_by', '')
                                )
                            ], NULL))
                        ) ORDER BY h.n)
                    FROM json_array_elements(d.document -> 'score_system_history') WITH ORDINALITY AS h (entry, n)
                ),
                NULL
            )),
            'identifier', CASE
                WHEN e.epr_encounter_id IS NOT NULL
                    THEN jsonb_build_array(jsonb_build_object(
                        'use', 'official', 'system', epr_identifier_system, 'value', e.epr_encounter_id
                    ))
            END,
            'status', d.status,
            'class', CASE upper(e.encounter_type)
                WHEN 'INPATIENT' THEN d.act_code || '{"code": "IMP", "display": "inpatient encounter"}'
                WHEN 'OUTPATIENT' THEN d.act_code || '{"code": "AMB", "display": "ambulatory"}'
                WHEN 'AMBULATORY' THEN d.act_code || '{"code": "AMB", "display": "ambulatory"}'
                WHEN 'EMERGENCY' THEN d.act_code || '{"code": "EMER", "display": "emergency"}'
                WHEN 'DAYCASE' THEN d.act_code || '{"code": "SS", "display": "short stay"}'
                WHEN 'VIRTUAL' THEN d.act_code || '{"code": "VR", "display": "virtual"}'
                WHEN 'HOME' THEN d.act_code || '{"code": "HH", "display": "home health"}'
                ELSE
                    '{"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK", '
                    '"display": "unknown"}'::jsonb
            END,
            'type', CASE
                WHEN btrim(e.encounter_type) <> '' THEN jsonb_build_array(jsonb_build_object('text', e.encounter_type))
            END,
            'subject', jsonb_build_object('reference', 'Patient/' || e.patient_uuid),
            'period', jsonb_build_object(
                'start', encounters_api.iso_utc(e.admitted_at), 'end', encounters_api.iso_utc(e.discharged_at)
            ),
            'location', to_jsonb(array_append(
                (
                    SELECT
                        array_agg(jsonb_build_object(
                            'location', jsonb_build_object('reference', 'Location/' || (v.visit ->> 'location_uuid')),
                            'status', 'completed',
                            'period', nullif(
                                jsonb_build_object('start', v.visit ->> 'arrived_at', 'end', v.visit ->> 'departed_at'),
                                '{"start": null, "end": null}'
                            )
                        ) ORDER BY v.n)
                    FROM json_array_elements(d.document -> 'location_history') WITH ORDINALITY AS v (visit, n)
                ),
                jsonb_build_object(
                    'location', jsonb_build_object('reference', 'Location/' || e.location_uuid),
                    'status', CASE WHEN d.status = 'in-progress' THEN 'active' ELSE 'completed' END,
                    'period', jsonb_build_object(
                        'start', coalesce(
                            (
                                SELECT max(v.visit ->> 'departed_at')
                                FROM json_array_elements(d.document -> 'location_history') AS v (visit)
                            ),
                            encounters_api.iso_utc(e.admitted_at)
                        ),
                        'end', encounters_api.iso_utc(e.discharged_at)
                    )
                )
            )),
            'partOf', CASE
                WHEN e.child_of_encounter_uuid IS NOT NULL
                    THEN jsonb_build_object('reference', 'Encounter/' || e.child_of_encounter_uuid)
            END
        ))
    FROM (
        SELECT
            'http://encounters-service/fhir/StructureDefinition/' AS url,
            '{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode"}'::jsonb AS act_code,
            coalesce(document, encounters_api.encounter_json(e)::json) AS document,
            CASE
                WHEN e.deleted_at IS NOT NULL THEN 'entered-in-error'
                WHEN e.discharged_at IS NOT NULL THEN 'finished'
                ELSE 'in-progress'
            END AS status
    ) AS d;
END;

COMMENT ON FUNCTION encounters_api.fhir_encounter_document(encounters.encounter, text, json) IS
'One encounter as a FHIR R4 Encounter resource (one row); epr_identifier_system is the system of its EPR identifier, '
'document its full form (the stored one; null: rendered from the tables). Join it laterally; fhir_encounter is the '
'scalar form.';
