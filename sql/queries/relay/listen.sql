-- Subscribes this session to the outbox's wake-up notifications (the insert trigger and relay/mark.sql send them).
--
-- Returns: nothing; the session then receives a notification on channel encounters_outbox after
--   each commit that wrote outbox rows or marked some published.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/relay/listen.sql
LISTEN encounters_outbox;
