-- encounters_api.location_visit_json(l) → jsonb
-- One location history entry as the full form lists it (location_history: [...]). The one
-- definition of that entry: encounters_api.encounter_document aggregates it, and the trigger that
-- appends a move's entry to a stored document (encounters.touch_encounter_documents) renders the
-- new entries with it.
-- Example: psql -c "SELECT encounters_api.location_visit_json(l) FROM encounters.location_history AS l LIMIT 1"
-- requires: encounters_api.iso_utc
CREATE OR REPLACE FUNCTION encounters_api.location_visit_json(l encounters.location_history)
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN jsonb_build_object(
    'location_uuid', l.location_uuid,
    'arrived_at', encounters_api.iso_utc(l.arrived_at),
    'departed_at', encounters_api.iso_utc(l.departed_at),
    'created_at', encounters_api.iso_utc(l.created_at)
);

COMMENT ON FUNCTION encounters_api.location_visit_json(encounters.location_history) IS
'One location history entry as the full form lists it.';
