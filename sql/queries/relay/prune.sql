-- Deletes messages published longer ago than the retention; waiting messages are never deleted.
--
-- Parameters:
--   retention  interval  how long published messages are kept, e.g. '7 days'
-- Returns: one row: how many rows were deleted.
-- Example:
--   psql -v retention='7 days' -f sql/queries/relay/prune.sql
WITH pruned AS (
    DELETE FROM encounters.outbox
    WHERE published_at < clock_timestamp() - :'retention'::interval
    RETURNING id
)

SELECT count(*) AS pruned
FROM pruned;
