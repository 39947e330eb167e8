-- Is the database answering, and how far behind is the event relay?
--
-- Returns: one row: a JSON document {"database": "ok", "outbox_waiting": n,
--   "outbox_oldest_age_seconds": s or null}.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/admin/healthcheck.sql
SELECT
    json_build_object(
        'database', 'ok',
        'outbox_waiting', count(*),
        'outbox_oldest_age_seconds',
        round(extract(EPOCH FROM clock_timestamp() - min(created_at))::numeric, 3)
    ) AS health
FROM encounters.outbox
WHERE published_at IS NULL;
