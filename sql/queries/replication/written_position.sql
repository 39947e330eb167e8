-- How far the primary has written its WAL: every change committed so far lies before this
-- position, so a standby that has replayed up to it shows all of them.
--
-- The service asks it right after each write's commit (the X-Encounters-LSN answer header, when
-- DATABASE_READ_URL is set) and every half second to measure its standbys' lag (standbys.py).
-- The position flushed to disk, which is where a standby's replay stops when it has caught up;
-- but in a session that commits without waiting for the flush (synchronous_commit=off) the
-- position inserted, as its own commit may not be flushed yet.
-- Returns: one row: the position as PostgreSQL writes it ('0/16B3740'); on a standby this fails
--   (55000: recovery is in progress), as nothing is written there.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/replication/written_position.sql
SELECT
    CASE
        WHEN current_setting('synchronous_commit') = 'off' THEN pg_current_wal_insert_lsn()
        ELSE pg_current_wal_flush_lsn()
    END::text AS written_position;
