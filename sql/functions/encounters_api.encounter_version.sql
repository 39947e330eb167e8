-- encounters_api.encounter_version(e) → bigint
-- The encounter's version, its ETag in the API: encounter.version, kept by trigger
-- encounter_track_change (1 at creation, 1 more per transaction that changes the full form);
-- null, for an encounter last changed before migration 0005, is version 1.
-- plpgsql, not an SQL-standard body: `migrate rollback` re-applies the function files on the
-- schema it rolled back to, where encounter.version may not exist (a standard body is bound to
-- the column when created; a plpgsql body only when called).
-- Example: psql -c "SELECT encounters_api.encounter_version(e) FROM encounters.encounter AS e LIMIT 1"
CREATE OR REPLACE FUNCTION encounters_api.encounter_version(e encounters.encounter)
RETURNS bigint
LANGUAGE plpgsql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog
AS $$
BEGIN
    RETURN coalesce(e.version, 1);
END;
$$;

COMMENT ON FUNCTION encounters_api.encounter_version(encounters.encounter) IS
'The encounter''s version (its ETag): 1 at creation, 1 more per transaction that changes its full form.';
