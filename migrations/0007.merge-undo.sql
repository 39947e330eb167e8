-- 0007 merge undo: a merge can be undone, and the undo shows in each encounter's merge history.
--
-- Purpose: POST /dhos/v1/encounter/merge/undo (encounters_api.undo_merge) moves every encounter a
-- merge moved back to the record and patient it had before. It must know where the merge put each
-- encounter, to refuse when one has moved on since: merge_history gains parent_record_uuid and
-- parent_patient_uuid (the record and patient the merge moved it to), written by
-- encounters_api.merge_encounters from now on. encounters.merge_undo holds one row per encounter a
-- merge undo moved back (the record and patient it had before the undo, and when);
-- GET …/merge_history shows it as an entry of its own after the merge's, whose row is unchanged.
-- The undo finds a merge's rows by message: index merge_history_message_idx.
-- Backfill: none. A merge recorded before this migration has null parent_record_uuid and
-- parent_patient_uuid (where it put the encounters was not recorded, and a later PATCH or merge
-- may have moved them since): the undo refuses it (409).
-- Locks: ADD COLUMN (no default: a catalog change) takes ACCESS EXCLUSIVE on merge_history for
-- milliseconds; CREATE INDEX takes SHARE on merge_history (merges wait, reads do not) while it
-- builds: merges are rare, the table small (one row per encounter merged). CREATE TABLE with a
-- foreign key takes SHARE ROW EXCLUSIVE on encounter and merge_history for milliseconds.
-- Rollback: 0007.merge-undo.rollback.sql drops the table, the index and the columns (the undos
-- recorded are lost; the encounters stay where the undos put them).
-- Lint: the index is built in the migration's transaction (yoyo runs each file in one), so it
-- cannot be CONCURRENTLY; the build is brief (above).
-- squawk-ignore-file require-concurrent-index-creation

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE encounters.merge_history ADD COLUMN parent_record_uuid uuid;
COMMENT ON COLUMN encounters.merge_history.parent_record_uuid IS
'Patient record the merge moved the encounter to; null for merges recorded before migration 0007.';
ALTER TABLE encounters.merge_history ADD COLUMN parent_patient_uuid uuid;
COMMENT ON COLUMN encounters.merge_history.parent_patient_uuid IS
'Patient the merge moved the encounter to; null for merges recorded before migration 0007.';

CREATE INDEX merge_history_message_idx ON encounters.merge_history (message_uuid);
COMMENT ON INDEX encounters.merge_history_message_idx IS 'A merge''s encounters, by its message (merge undo).';

CREATE TABLE encounters.merge_undo (
    encounter_uuid uuid NOT NULL,
    message_uuid uuid NOT NULL,
    record_uuid uuid NOT NULL,
    patient_uuid uuid NOT NULL,
    undone_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (encounter_uuid, message_uuid),
    CONSTRAINT merge_undo_of_a_merge FOREIGN KEY (encounter_uuid, message_uuid)
    REFERENCES encounters.merge_history (encounter_uuid, message_uuid)
);
COMMENT ON TABLE encounters.merge_undo IS
'Merges undone, per encounter moved back: the record and patient it had before the undo (encounters_api.undo_merge).';
COMMENT ON COLUMN encounters.merge_undo.message_uuid IS 'The message of the merge undone (its merge_history row).';
COMMENT ON COLUMN encounters.merge_undo.record_uuid IS 'Patient record the encounter belonged to before the undo.';
COMMENT ON COLUMN encounters.merge_undo.patient_uuid IS 'Patient the encounter belonged to before the undo.';
COMMENT ON COLUMN encounters.merge_undo.undone_at IS 'When the merge was undone.';
