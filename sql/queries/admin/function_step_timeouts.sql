-- Sets the limits of `migrate upgrade`'s function step for the rest of its transaction, as each migration sets its own.
--
-- Parameters:
--   lock_timeout       text  how long a statement may wait for a lock, e.g. 5s
--   statement_timeout  text  how long one statement may run, e.g. 60s
-- Returns: one row: the two settings as set.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v lock_timeout=5s -v statement_timeout=60s -f sql/queries/admin/function_step_timeouts.sql
SELECT
    set_config('lock_timeout', :'lock_timeout'::text, TRUE) AS lock_timeout,
    set_config('statement_timeout', :'statement_timeout'::text, TRUE) AS statement_timeout;
