-- Every version of an encounter as a FHIR R4 Bundle of type history, newest first
-- (GET /fhir/R4/Encounter/{id}/_history); EN404 for an unknown encounter.
--
-- A deleted encounter has its history too (the read answers 410 Gone for it): each version is an
-- entry, its resource from encounters_api.fhir_encounter_versions, and the request that made it:
-- POST Encounter for the first version, DELETE Encounter/<id> for a version with deleted_at (an
-- entry without a resource, as FHIR writes a deletion), PUT Encounter/<id> for any other (a PATCH,
-- a merge, an undo), with the response: its status, ETag W/"<version>" and lastModified.
-- Parameters:
--   encounter_id           uuid  the encounter
--   epr_identifier_system  text  the system of the EPR identifier (FHIR_EPR_IDENTIFIER_SYSTEM)
--   base_url               text  the FHIR base, for the self link and each entry's fullUrl
-- Returns: one row, one column: the Bundle (jsonb).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v encounter_id=… \
--     -v epr_identifier_system=urn:example:epr -v base_url=http://localhost/fhir/R4 -f sql/queries/fhir/history.sql
WITH version AS (
    SELECT
        v.version,
        v.modified,
        v.resource,
        v.deleted,
        'Encounter/' || :'encounter_id'::uuid AS path,
        CASE WHEN v.deleted THEN 'DELETE' WHEN v.version = 1 THEN 'POST' ELSE 'PUT' END AS method,
        CASE WHEN v.deleted THEN '204 No Content' WHEN v.version = 1 THEN '201 Created' ELSE '200 OK' END AS status
    FROM encounters_api.fhir_encounter_versions(:'encounter_id'::uuid, :'epr_identifier_system'::text) AS v
)

SELECT
    jsonb_build_object(
        'resourceType', 'Bundle',
        'type', 'history',
        'total', count(*),
        'link', jsonb_build_array(
            jsonb_build_object('relation', 'self', 'url', :'base_url'::text || '/' || min(v.path) || '/_history')
        ),
        'entry', jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
            'fullUrl', :'base_url'::text || '/' || v.path,
            'resource', CASE WHEN NOT v.deleted THEN v.resource END,
            'request',
            jsonb_build_object('method', v.method, 'url', CASE WHEN v.method = 'POST' THEN 'Encounter' ELSE v.path END),
            'response', jsonb_build_object(
                'status', v.status,
                'etag', 'W/"' || v.version || '"',
                'lastModified', encounters_api.iso_utc(v.modified)
            )
        )) ORDER BY v.version DESC)
    )
FROM version AS v;
