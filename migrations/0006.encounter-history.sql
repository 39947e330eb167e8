-- 0006 encounter history: every version of every encounter is kept.
--
-- Purpose: GET /dhos/v1/encounter/{id}/history lists every version of an encounter, oldest first,
-- as it was; GET …/history/{version} shows one. encounters.encounter_history holds one row per
-- version: the stored document (the full form) and modified/modified_by as they were when the
-- transaction that made the version ended. Trigger encounter_keep_version (AFTER, per row)
-- writes it, in the writing transaction: whenever a write leaves the encounter at a version that
-- this transaction made (encounter.versioned_xid, migration 0005), it stores that version
-- (again, if the transaction writes the encounter more than once).
-- Backfill: none (a copy of every document). An encounter last changed before this migration
-- has no row yet: the history shows its current version, read from the encounter itself, and
-- its next change stores that version as well as the new one.
-- Locks: CREATE TABLE locks nothing that callers use; CREATE TRIGGER takes SHARE ROW EXCLUSIVE on
-- encounter (writes wait) for milliseconds.
-- Rollback: 0006.encounter-history.rollback.sql drops the trigger, its function and the table.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

-- (noqa: the linter cannot parse a column's COMPRESSION, and leaves this statement alone.)
CREATE TABLE encounters.encounter_history (  -- noqa: PRS
    encounter_uuid uuid NOT NULL REFERENCES encounters.encounter (uuid),
    version bigint NOT NULL,
    modified timestamptz NOT NULL,
    modified_by text NOT NULL,
    document json COMPRESSION lz4 NOT NULL,
    PRIMARY KEY (encounter_uuid, version)
);
COMMENT ON TABLE encounters.encounter_history IS
'Every version of every encounter as it was (trigger encounter_keep_version); from migration 0006 on.';
COMMENT ON COLUMN encounters.encounter_history.version IS 'The version (encounter.version when it was made).';
COMMENT ON COLUMN encounters.encounter_history.modified IS 'The encounter''s modified when the version was made.';
COMMENT ON COLUMN encounters.encounter_history.modified_by IS 'The encounter''s modified_by when the version was made.';
COMMENT ON COLUMN encounters.encounter_history.document IS 'The full form of that version (encounter.document then).';

CREATE FUNCTION encounters.keep_encounter_version() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF NEW.versioned_xid IS DISTINCT FROM pg_current_xact_id() OR NEW.document IS NULL THEN
        -- the write made no version (e.g. a PATCH that changed nothing), or there is no stored
        -- document to keep (the schema of a rollback to before 0002)
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.versioned_xid IS DISTINCT FROM NEW.versioned_xid AND OLD.document IS NOT NULL THEN
        -- This transaction's first version: keep the one before too, if it was made before this
        -- history was (migration 0006).
        INSERT INTO encounters.encounter_history (encounter_uuid, version, modified, modified_by, document)
        VALUES (OLD.uuid, coalesce(OLD.version, 1), OLD.modified, OLD.modified_by, OLD.document)
        ON CONFLICT (encounter_uuid, version) DO NOTHING;
    END IF;
    INSERT INTO encounters.encounter_history AS h (encounter_uuid, version, modified, modified_by, document)
    VALUES (NEW.uuid, NEW.version, NEW.modified, NEW.modified_by, NEW.document)
    ON CONFLICT (encounter_uuid, version) DO UPDATE
        SET modified = excluded.modified, modified_by = excluded.modified_by, document = excluded.document;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION encounters.keep_encounter_version() IS
'Stores the version a write leaves the encounter at, when its transaction made it (trigger encounter_keep_version).';

CREATE TRIGGER encounter_keep_version
AFTER INSERT OR UPDATE ON encounters.encounter
FOR EACH ROW EXECUTE FUNCTION encounters.keep_encounter_version();
