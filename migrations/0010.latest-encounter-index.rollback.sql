-- Rollback of 0010: encounter_patient_idx gets its old key back (patient, admitted_at DESC, created DESC).
-- Locks: as the migration: SHARE on encounter while the index builds, ACCESS EXCLUSIVE from the drop to the commit.
-- Lint: in the rollback's transaction, so not CONCURRENTLY.
-- The new index takes the old one's name (renaming-object): the name stays what it was.
-- squawk-ignore-file require-concurrent-index-creation, require-concurrent-index-deletion, renaming-object

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '300s';

CREATE INDEX encounter_patient_earlier_idx
ON encounters.encounter (patient_uuid, admitted_at DESC, created DESC);

DROP INDEX encounters.encounter_patient_idx;

ALTER INDEX encounters.encounter_patient_earlier_idx RENAME TO encounter_patient_idx;
COMMENT ON INDEX encounters.encounter_patient_idx IS 'Encounters of a patient, latest first.';
