-- 0005 encounter versions: each encounter has a version number, for ETag and If-Match.
--
-- Purpose: the write routes answer `ETag: "<version>"`, GET by id answers 304 to a matching
-- If-None-Match, and PATCH and DELETE refuse with 412 when If-Match names another version, so
-- that two callers cannot overwrite each other's changes unknowingly. encounter.version is 1
-- when the encounter is created and 1 more for each transaction that changes its full form (the
-- stored document): not for a write that changes nothing a reader of the full form sees, such
-- as a PATCH that changes no field (it sets `modified` only), nor twice in one transaction
-- (a create or a move writes the row more than once). encounter.versioned_xid, the transaction
-- that made the version, tells the trigger whether it already counted this transaction.
-- Trigger encounter_track_change (0004) keeps both, as it keeps changed_xid.
-- Backfill: none. Rows written before this migration keep version null, which means 1
-- (encounters_api.encounter_version reads it); not a default, as in 0004: ADD COLUMN with a
-- default is refused while functions take the table's row type.
-- Locks: ADD COLUMN (no default: a catalog change) takes ACCESS EXCLUSIVE on encounter for
-- milliseconds; CREATE OR REPLACE
-- FUNCTION of the trigger function locks nothing that callers use.
-- Rollback: 0005.encounter-versions.rollback.sql restores 0004's trigger function and drops the columns.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE encounters.encounter ADD COLUMN version bigint;
COMMENT ON COLUMN encounters.encounter.version IS
'Derived: 1 at creation, 1 more for each transaction that changed the encounter''s full form (its stored document); '
'null when last changed before migration 0005 (1). The ETag of the API; set by trigger encounter_track_change.';
ALTER TABLE encounters.encounter ADD COLUMN versioned_xid xid8;
COMMENT ON COLUMN encounters.encounter.versioned_xid IS
'Derived: the transaction (pg_current_xact_id) that made the current version; null when made before migration 0005. '
'Set by trigger encounter_track_change (one version per transaction).';

CREATE OR REPLACE FUNCTION encounters.track_encounter_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    this_transaction xid8 := pg_current_xact_id();
BEGIN
    -- BEFORE triggers fire in name order: this one (encounter_track_change) after
    -- encounter_document, so NEW.document is the document being stored. The three columns are
    -- derived: whatever a statement wrote into them is replaced.
    IF TG_OP = 'INSERT' THEN
        NEW.version := 1;
        NEW.versioned_xid := this_transaction;
        NEW.changed_xid := this_transaction;
        RETURN NEW;
    END IF;
    NEW.version := OLD.version;
    NEW.versioned_xid := OLD.versioned_xid;
    NEW.changed_xid := OLD.changed_xid;
    IF NEW.document::text IS DISTINCT FROM OLD.document::text THEN
        -- The full form changed: a new version, once per transaction.
        IF OLD.versioned_xid IS DISTINCT FROM this_transaction THEN
            NEW.version := coalesce(OLD.version, 1) + 1;  -- null: 1 (before 0005)
            NEW.versioned_xid := this_transaction;
        END IF;
        NEW.changed_xid := this_transaction;
    ELSIF (NEW.modified, NEW.modified_by) IS DISTINCT FROM (OLD.modified, OLD.modified_by) THEN
        -- The expanded form changed (the change feed shows it), the full form did not: same version.
        NEW.changed_xid := this_transaction;
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION encounters.track_encounter_change() IS
'Keeps encounter.version (1 more per transaction that changes the stored document), versioned_xid and changed_xid '
'(the writing transaction, when the document or modified/modified_by changes); trigger encounter_track_change.';
