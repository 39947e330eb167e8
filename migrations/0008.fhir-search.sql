-- 0008 FHIR search: indexes for Encounter?location=… (GET /fhir/R4/Encounter, api/fhir.py).
--
-- depends: 0007.merge-undo
--
-- Purpose: FHIR's `location` search matches an encounter at any of its locations, the current
-- one or one in its location history (Encounter.location.location), children included; the
-- census index encounter_location_current_idx holds only top-level encounters, and the history
-- had no index by location. encounter_location_idx finds the encounters whose current location
-- is one of the searched ones, location_history_location_idx those that stayed there before, and
-- encounter_open_idx which of those are still in progress (an admissions ward sees most patients
-- pass: at 1M encounters, 112,560 stays there before, of 12,500 open encounters).
-- encounter_location_idx is not partial: one on `deleted_at IS NULL` looks nearly empty to a
-- planner without statistics (after a bulk load), which then took it to filter other queries
-- (tests/reliability/test_plans_without_statistics.py).
-- Locks: each CREATE INDEX takes SHARE on its table (writes to it wait) while it builds: about
-- a second per million rows on this kind of machine.
-- Rollback: 0008.fhir-search.rollback.sql drops the three indexes.
-- Lint: the indexes are built in the migration's transaction (yoyo runs each file in one), so
-- they cannot be CONCURRENTLY.
-- squawk-ignore-file require-concurrent-index-creation

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '300s';

CREATE INDEX encounter_location_idx ON encounters.encounter (location_uuid);
COMMENT ON INDEX encounters.encounter_location_idx IS 'Encounters per current location, children and deleted ones included (FHIR search by location).';

CREATE INDEX location_history_location_idx ON encounters.location_history (location_uuid, encounter_uuid);
COMMENT ON INDEX encounters.location_history_location_idx IS 'Encounters that stayed at a location before their current one (FHIR search by location).';

CREATE INDEX encounter_open_idx ON encounters.encounter (uuid) WHERE discharged_at IS NULL AND deleted_at IS NULL;
COMMENT ON INDEX encounters.encounter_open_idx IS 'Open encounters (FHIR search by location and status in-progress: those that stayed there before).';
