-- encounters_api.fhir_encounter(e, epr_identifier_system, document) → jsonb
-- One encounter as a FHIR R4 Encounter resource, as a value: encounters_api.fhir_encounter_document
-- (which defines it, and says how it maps the encounter) for one encounter; a query over many
-- joins fhir_encounter_document laterally instead, which the planner inlines.
-- document: the encounter's stored full form (e.document), or null to render it from the tables.
-- Example:
--   psql "$PGURL" -c "SELECT encounters_api.fhir_encounter(e, 'urn:example:epr', e.document) FROM encounters.encounter AS e LIMIT 1"
-- requires: encounters_api.fhir_encounter_document
CREATE OR REPLACE FUNCTION encounters_api.fhir_encounter(
    e encounters.encounter, epr_identifier_system text, document json DEFAULT NULL
)
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
BEGIN ATOMIC
    SELECT f.resource
    FROM encounters_api.fhir_encounter_document(e, epr_identifier_system, document) AS f (resource);
END;

COMMENT ON FUNCTION encounters_api.fhir_encounter(encounters.encounter, text, json) IS
'One encounter as a FHIR R4 Encounter resource (fhir_encounter_document as a value); document: its stored full form, '
'or null to render it from the tables.';
