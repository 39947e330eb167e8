-- The next outbox messages this relay may publish, oldest first, locked until its transaction ends.
--
-- Run inside the relay's transaction: the rows stay locked (FOR UPDATE SKIP LOCKED, in
-- encounters_api.claim_outbox) while the relay publishes them, so a second relay skips them, and
-- the relay marks them (relay/mark.sql) before it commits. A crash before the commit releases
-- them for the next attempt. Order per encounter: a row is not returned while an older waiting
-- row of the same encounter is held by another relay (it stays locked here, unreturned, and
-- comes back in a later batch). Rows without an encounter have no order to keep and are never held back.
--
-- Parameters:
--   batch_size  integer  how many rows to lock at most
-- Returns: one row per message to publish, in id order: id, message_id, encounter_uuid,
--   routing_key, body (JSON text), waited_seconds (since the row was written).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v batch_size=10 -c 'BEGIN' -f sql/queries/relay/claim.sql -c 'ROLLBACK'
SELECT
    id,
    message_id,
    encounter_uuid,
    routing_key,
    body,
    waited_seconds
FROM encounters_api.claim_outbox(:'batch_size'::integer);
