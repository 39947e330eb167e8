-- 0004 change feed: each encounter carries the transaction that last changed it, for the feed.
--
-- Purpose: GET /dhos/v2/encounters/changes (sql/queries/encounters/changes.sql) hands out the
-- encounters that changed after a cursor without ever skipping a commit. Timestamps cannot do
-- that (`modified` is set before commit, so a transaction that started first may commit last);
-- the transaction id can: encounter.changed_xid is pg_current_xact_id() of the transaction that
-- last changed the encounter's visible form (its stored document, or modified/modified_by), set
-- by trigger encounter_track_change, and the feed only hands out positions (changed_xid, uuid)
-- of transactions older than every transaction still running. The argument is in the header of
-- sql/queries/encounters/changes.sql.
-- Backfill: none. Rows written before this migration keep changed_xid null, which the feed takes
-- for transaction 1 (older than every real one: they come first), by the expression it is
-- indexed on. Not a default: ADD COLUMN with a default is refused while functions take the
-- table's row type (encounters_api.encounter_document does), and a backfill would rewrite every
-- row (and render every document again, by trigger).
-- Locks: ADD COLUMN (no default: a catalog change) and CREATE TRIGGER take ACCESS EXCLUSIVE and
-- SHARE ROW EXCLUSIVE on encounter for milliseconds; CREATE INDEX takes SHARE on encounter (writes wait, reads do not)
-- while it builds: about a second per million encounters.
-- Rollback: 0004.change-feed.rollback.sql drops the trigger, its function, the index and the column.
-- Lint: the index is built in the migration's transaction (yoyo runs each file in one), so it
-- cannot be CONCURRENTLY; the build is brief (above).
-- squawk-ignore-file require-concurrent-index-creation

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '300s';

ALTER TABLE encounters.encounter ADD COLUMN changed_xid xid8;
COMMENT ON COLUMN encounters.encounter.changed_xid IS
'Derived: the transaction (pg_current_xact_id) that last changed the encounter''s stored document or modified/modified_by; '
'null when last written before migration 0004 (the feed takes it for 1). Set by trigger encounter_track_change.';

CREATE INDEX encounter_change_idx ON encounters.encounter ((coalesce(changed_xid, '1'::xid8)), uuid);
COMMENT ON INDEX encounters.encounter_change_idx IS 'The change feed: encounters in the order of the transactions that last changed them (null: 1, before 0004).';

CREATE FUNCTION encounters.track_encounter_change() RETURNS trigger
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

CREATE TRIGGER encounter_track_change
BEFORE INSERT OR UPDATE ON encounters.encounter
FOR EACH ROW EXECUTE FUNCTION encounters.track_encounter_change();
