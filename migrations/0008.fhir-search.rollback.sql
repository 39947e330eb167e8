-- Rollback of 0008: the FHIR location search indexes go (the search still answers, by scanning).
-- Locks: DROP INDEX takes ACCESS EXCLUSIVE on encounter and location_history for milliseconds.
-- Lint: the indexes are dropped in the rollback's transaction, so not CONCURRENTLY.
-- squawk-ignore-file require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP INDEX encounters.encounter_open_idx;
DROP INDEX encounters.location_history_location_idx;
DROP INDEX encounters.encounter_location_idx;
