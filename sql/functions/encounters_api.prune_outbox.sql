-- encounters_api.prune_outbox(retention, max_rows) → how many rows were deleted
-- The relay's prune (sql/queries/relay/prune.sql): deletes the oldest messages published longer
-- ago than the retention, at most max_rows at a time (short statements; the relay repeats while a
-- full batch was deleted). Waiting messages are never deleted. Runs as the owner (SECURITY
-- DEFINER): the service's role may not delete from the outbox itself.
CREATE OR REPLACE FUNCTION encounters_api.prune_outbox(retention interval, max_rows integer)
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, pg_temp
BEGIN ATOMIC
    WITH pruned AS (
        DELETE FROM encounters.outbox
        WHERE
            id IN (
                SELECT o.id
                FROM encounters.outbox AS o
                WHERE o.published_at < clock_timestamp() - prune_outbox.retention
                ORDER BY o.id
                LIMIT prune_outbox.max_rows
            )
        RETURNING id
    )

    SELECT count(*)
    FROM pruned;
END;

COMMENT ON FUNCTION encounters_api.prune_outbox(interval, integer) IS
'Deletes at most max_rows outbox messages published longer ago than the retention; returns how many.';
