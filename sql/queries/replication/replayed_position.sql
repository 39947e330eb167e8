-- How far a hot standby has replayed the primary's WAL: it shows every change committed before
-- this position on the primary, and none after.
--
-- Asked of each standby of DATABASE_READ_URL every half second, and before a read that must see
-- a write (X-Encounters-LSN) when the last answer was not far enough (standbys.py).
-- Returns: one row: the position ('0/16B3740'), or null when the server is not a standby (a
--   primary, or a standby since promoted).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/replication/replayed_position.sql
SELECT pg_last_wal_replay_lsn()::text AS replayed_position;
