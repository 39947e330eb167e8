-- Gives every object of the service's schemas its owner and each role its grants, as migration 0009 did.
--
-- `migrate upgrade` runs it after re-applying sql/functions, so that a new function is owned by
-- the owner role, executable by the app role, and by the analyst role if it runs with the
-- caller's privileges (not SECURITY DEFINER). Creates a recorded role that does not exist.
-- Run it as the owner or a superuser.
-- Returns: one row, one column: null.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/admin/grant_privileges.sql
SELECT encounters.grant_privileges();
