-- encounters_api.mark_published(ids) → how many rows were marked
-- The relay's mark (sql/queries/relay/mark.sql): sets published_at on the waiting outbox rows
-- the broker confirmed, and notifies channel encounters_outbox (sent at commit), so that another
-- relay retries rows it held back for per-encounter order. Runs as the owner (SECURITY DEFINER):
-- the service's role may not update the outbox itself.
CREATE OR REPLACE FUNCTION encounters_api.mark_published(ids bigint[])
RETURNS bigint
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, pg_temp
BEGIN ATOMIC
    WITH marked AS (
        UPDATE encounters.outbox
        SET published_at = clock_timestamp()
        WHERE id = ANY(mark_published.ids) AND published_at IS NULL
        RETURNING id
    )

    -- (one row, so one notification, however many rows were marked)
    SELECT m.marked
    FROM (
        SELECT
            count(*) AS marked,
            pg_notify('encounters_outbox', '') AS notified
        FROM marked
    ) AS m;
END;

COMMENT ON FUNCTION encounters_api.mark_published(bigint[]) IS
'Marks the outbox rows the broker confirmed as published and wakes the other relays; returns how many.';
