-- One encounter as a FHIR R4 Encounter resource (GET /fhir/R4/Encounter/{id}).
--
-- A deleted encounter is found too, without its resource, so that the route answers 410 Gone for it
-- (and 404 only for an id that was never used).
-- Parameters:
--   encounter_id           uuid  the encounter
--   epr_identifier_system  text  the system of the EPR identifier (FHIR_EPR_IDENTIFIER_SYSTEM)
-- Returns: no row for an unknown id; else one row: deleted (boolean), version (bigint, its
--   meta.versionId and ETag), resource (the Encounter, jsonb; null when deleted).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v encounter_id=2126393f-c86b-4bf2-9f68-42bb03a7b68a \
--     -v epr_identifier_system=urn:example:epr -f sql/queries/fhir/encounter.sql
SELECT
    e.deleted_at IS NOT NULL AS deleted,
    encounters_api.encounter_version(e) AS version,
    CASE
        WHEN e.deleted_at IS NULL THEN encounters_api.fhir_encounter(e, :'epr_identifier_system'::text, e.document)
    END AS resource
FROM encounters.encounter AS e
WHERE e.uuid = :'encounter_id'::uuid;
