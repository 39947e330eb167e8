-- encounters_api.fhir_encounter_versions(encounter_id, epr_identifier_system) → rows: resource, version, modified, deleted
-- Every version of an encounter as a FHIR R4 Encounter resource (GET /fhir/R4/Encounter/{id}/_history
-- and …/_history/{vid}), deleted encounters included: each version of encounters_api.encounter_history
-- rendered by encounters_api.fhir_encounter_document, from that version's full form alone (an old
-- version's fields are in its document, not in the encounter's row): the row given to it is
-- populated from the document, with the version, and the dh_product uuid of the document's
-- dh_product[0]. So a version's resource is the resource the read answered while it was current
-- (but for meta.lastUpdated after a write that changed nothing: it moves modified, not the version).
-- deleted: the version has deleted_at (its resource's status is entered-in-error).
-- (The row's version column is not read here: this file is also applied to a schema rolled back
-- to before it; encounters_api.encounter_version reads it, when called.)
--   404 EN404  no such encounter (encounters_api.encounter_history).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -c "SELECT v.version, v.resource FROM (SELECT uuid FROM encounters.encounter LIMIT 1) AS e, encounters_api.fhir_encounter_versions(e.uuid, 'urn:example:epr') AS v"
-- requires: encounters_api.encounter_history, encounters_api.fhir_encounter_document
CREATE OR REPLACE FUNCTION encounters_api.fhir_encounter_versions(encounter_id uuid, epr_identifier_system text)
RETURNS TABLE (resource jsonb, version bigint, modified timestamptz, deleted boolean)
LANGUAGE sql
STABLE
BEGIN ATOMIC
    SELECT
        f.resource,
        (v.entry ->> 'version')::bigint AS version,
        (v.entry ->> 'modified')::timestamptz AS modified,
        e.deleted_at IS NOT NULL AS deleted
    FROM jsonb_array_elements(encounters_api.encounter_history(fhir_encounter_versions.encounter_id)) AS v (entry)
    CROSS JOIN
        LATERAL jsonb_populate_record(
            NULL::encounters.encounter,
            (v.entry -> 'encounter') || jsonb_build_object(
                'version', v.entry -> 'version',
                'dh_product_uuid', v.entry #> '{encounter,dh_product,0,uuid}'
            )
        ) AS e
    CROSS JOIN LATERAL encounters_api.fhir_encounter_document(
        e, fhir_encounter_versions.epr_identifier_system, (v.entry -> 'encounter')::json
    ) AS f (resource);
END;

COMMENT ON FUNCTION encounters_api.fhir_encounter_versions(uuid, text) IS
'Every version of an encounter as a FHIR R4 Encounter resource (resource, version, modified, deleted), rendered '
'from each version''s full form. Raises EN404.';
