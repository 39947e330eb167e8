-- One version of an encounter as a FHIR R4 Encounter resource (GET /fhir/R4/Encounter/{id}/_history/{vid});
-- EN404 for an unknown encounter.
--
-- A version with deleted_at is found too, so that the route answers 410 Gone for it, as FHIR's
-- vread of a deletion does (the history lists it as a DELETE).
-- Parameters:
--   encounter_id           uuid    the encounter
--   version                bigint  the version (meta.versionId)
--   epr_identifier_system  text    the system of the EPR identifier (FHIR_EPR_IDENTIFIER_SYSTEM)
-- Returns: no row for an unknown version; else one row: deleted (boolean), resource (the
--   Encounter as it was, jsonb).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v encounter_id=… -v version=1 \
--     -v epr_identifier_system=urn:example:epr -f sql/queries/fhir/version.sql
SELECT
    v.deleted,
    v.resource
FROM encounters_api.fhir_encounter_versions(:'encounter_id'::uuid, :'epr_identifier_system'::text) AS v
WHERE v.version = :'version'::bigint;
