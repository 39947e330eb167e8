-- encounters_api.updatable_values(e) → jsonb
-- The fields a PATCH may change, keyed and rendered as the API writes them. Two encounters'
-- documents differ exactly where an update changed something (encounter_modified lists it).
-- requires: encounters_api.iso_utc
CREATE OR REPLACE FUNCTION encounters_api.updatable_values(e encounters.encounter)
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
BEGIN ATOMIC
    SELECT
        jsonb_build_object(
            'epr_encounter_id', e.epr_encounter_id,
            'encounter_type', e.encounter_type,
            'admitted_at', encounters_api.iso_utc(e.admitted_at),
            'discharged_at', encounters_api.iso_utc(e.discharged_at),
            'deleted_at', encounters_api.iso_utc(e.deleted_at),
            'location_uuid', e.location_uuid,
            'dh_product_uuid', e.dh_product_uuid,
            'score_system', e.score_system,
            'patient_record_uuid', e.patient_record_uuid,
            'child_of_encounter_uuid', e.child_of_encounter_uuid,
            'spo2_scale', e.spo2_scale
        );
END;

COMMENT ON FUNCTION encounters_api.updatable_values(encounters.encounter) IS
'The updatable fields of an encounter as the API renders them, keyed by field name.';
