-- Marks messages as published (the broker confirmed them) and wakes the other relays.
--
-- Run in the same transaction as relay/claim.sql, after the broker's confirms. The notification
-- (sent at commit) lets another relay retry rows it held back for per-encounter order.
--
-- Parameters:
--   ids  bigint[]  outbox ids the broker confirmed
-- Returns: one row: how many rows were marked.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v ids='{1,2,3}' -f sql/queries/relay/mark.sql
WITH marked AS (
    UPDATE encounters.outbox
    SET published_at = clock_timestamp()
    WHERE id = ANY(:'ids'::bigint[]) AND published_at IS NULL
    RETURNING id
)

SELECT
    count(*) AS marked,
    pg_notify('encounters_outbox', '') AS notified
FROM marked;
