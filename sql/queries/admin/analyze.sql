-- Refreshes the planner's statistics of the service's tables (schema `encounters`), as
-- `encounters-service migrate upgrade` does last.
--
-- After a bulk load (an import, a restore) a table has no statistics until autovacuum's first
-- ANALYZE: the read queries are planned on their indexes without them
-- (tests/reliability/test_plans_without_statistics.py), but every other estimate is a guess.
-- ANALYZE reads a sample of each table (30,000 rows at most): about a second at a million
-- encounters; it takes SHARE UPDATE EXCLUSIVE locks, which block neither reads nor writes.
-- Returns: nothing.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/admin/analyze.sql
ANALYZE encounters.encounter, encounters.location_history, encounters.score_system_history,
encounters.merge_history, encounters.outbox, encounters.deployed_function;
