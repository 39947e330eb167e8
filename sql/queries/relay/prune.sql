-- Deletes the oldest messages published longer ago than the retention, at most `max_rows` at a
-- time (short statements; the relay repeats while a full batch was deleted). Waiting messages
-- are never deleted.
--
-- Parameters:
--   retention  interval  how long published messages are kept, e.g. '7 days'
--   max_rows   integer   how many rows one run deletes at most
-- Returns: one row: how many rows were deleted.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v retention='7 days' -v max_rows=10000 -f sql/queries/relay/prune.sql
WITH pruned AS (
    DELETE FROM encounters.outbox
    WHERE
        id IN (
            SELECT id
            FROM encounters.outbox
            WHERE published_at < clock_timestamp() - :'retention'::interval
            ORDER BY id
            LIMIT :'max_rows'::integer
        )
    RETURNING id
)

SELECT count(*) AS pruned
FROM pruned;
