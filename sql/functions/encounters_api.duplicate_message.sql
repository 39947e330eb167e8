-- encounters_api.duplicate_message(rule, e) → text
-- Checks encounter `e` (about to be written) against one duplicate rule, named after the
-- unique index that enforces it, and says which other encounter it clashes with; null when it
-- clashes with none. Writers call it before writing (for a precise 409) and again when the
-- index refused a concurrent duplicate (the winner has committed by then, so it is visible).
CREATE OR REPLACE FUNCTION encounters_api.duplicate_message(rule text, e encounters.encounter)
RETURNS text
LANGUAGE sql
STABLE
BEGIN ATOMIC
    SELECT
        CASE rule
            WHEN 'encounter_live_epr_id_key'
                THEN (
                    SELECT
                        format(
                            'epr_encounter_id %s is already used by encounter %s, which is not deleted',
                            e.epr_encounter_id, other.uuid
                        )
                    FROM encounters.encounter AS other
                    WHERE
                        other.epr_encounter_id = e.epr_encounter_id
                        AND other.deleted_at IS NULL
                        AND other.uuid IS DISTINCT FROM e.uuid
                    ORDER BY other.uuid
                    LIMIT 1
                )
            WHEN 'encounter_one_open_local_key' THEN (
                SELECT
                    format(
                        'patient %s already has an open local encounter: %s',
                        e.patient_uuid, other.uuid
                    )
                FROM encounters.encounter AS other
                WHERE
                    e.epr_encounter_id IS NULL
                    AND other.patient_uuid = e.patient_uuid
                    AND other.epr_encounter_id IS NULL
                    AND other.child_of_encounter_uuid IS NULL
                    AND other.discharged_at IS NULL
                    AND other.deleted_at IS NULL
                    AND other.uuid IS DISTINCT FROM e.uuid
                ORDER BY other.uuid
                LIMIT 1
            )
        END;
END;

COMMENT ON FUNCTION encounters_api.duplicate_message(text, encounters.encounter) IS
'Which encounter `e` would duplicate under a rule (named after its unique index), as a message; null if none.';
