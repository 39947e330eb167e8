-- Rollback of 0005: no versions; the trigger keeps only the change feed's changed_xid, as in 0004.
-- Locks: ACCESS EXCLUSIVE on encounter for milliseconds (DROP COLUMN only marks the columns
-- dropped); CREATE OR REPLACE FUNCTION locks nothing that callers use.
-- The encounters_api functions whose bodies select e.* depend on every column of encounter, so
-- the columns are dropped with CASCADE, which drops them too; `encounters-service migrate
-- rollback` re-applies sql/functions afterwards, as `migrate upgrade` does.
-- Lint: dropping the derived columns is the point of this rollback; no data is lost.
-- squawk-ignore-file ban-drop-column

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE OR REPLACE FUNCTION encounters.track_encounter_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    -- BEFORE triggers fire in name order: this one (encounter_track_change) after
    -- encounter_document, so NEW.document is the document being stored.
    IF TG_OP = 'UPDATE'
        AND NEW.document::text IS NOT DISTINCT FROM OLD.document::text
        AND (NEW.modified, NEW.modified_by) IS NOT DISTINCT FROM (OLD.modified, OLD.modified_by) THEN
        -- Nothing a reader sees changed (e.g. documents rendered again, the same): the encounter
        -- keeps its place in the feed, whatever the statement wrote into changed_xid.
        NEW.changed_xid := OLD.changed_xid;
    ELSE
        NEW.changed_xid := pg_current_xact_id();
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION encounters.track_encounter_change() IS
'Sets encounter.changed_xid to the writing transaction when the encounter''s document or modified/modified_by '
'changes (trigger encounter_track_change, after encounter_document).';

ALTER TABLE encounters.encounter DROP COLUMN versioned_xid CASCADE;
ALTER TABLE encounters.encounter DROP COLUMN version CASCADE;
