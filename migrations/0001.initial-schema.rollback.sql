-- Rollback of 0001: drops everything the service owns (both schemas and their data).
-- Locks: ACCESS EXCLUSIVE on every table of the schemas while they are dropped.
-- Lint: dropping the schemas is the point of this rollback.
-- squawk-ignore-file ban-drop-schema

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DROP SCHEMA encounters_api CASCADE;
DROP SCHEMA encounters CASCADE;
