-- The next outbox messages this relay may publish, oldest first, locked until its transaction ends.
--
-- Run inside the relay's transaction: the rows stay locked (FOR UPDATE SKIP LOCKED) while the
-- relay publishes them, so a second relay skips them, and the relay marks them (relay/mark.sql)
-- before it commits. A crash before the commit releases them for the next attempt.
-- Order per encounter: a row is not returned while an older waiting row of the same encounter
-- is held by another relay (it stays locked here, unreturned, and comes back in a later batch).
-- Rows without an encounter have no order to keep and are never held back.
--
-- Parameters:
--   batch_size  integer  how many rows to lock at most
-- Returns: one row per message to publish, in id order: id, message_id, encounter_uuid,
--   routing_key, body (JSON text), waited_seconds (since the row was written).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v batch_size=10 -c 'BEGIN' -f sql/queries/relay/claim.sql -c 'ROLLBACK'
WITH claimed AS (
    SELECT
        id,
        encounter_uuid
    FROM encounters.outbox
    WHERE published_at IS NULL
    ORDER BY id
    LIMIT :'batch_size'::integer
    FOR UPDATE SKIP LOCKED
),

-- Waiting rows below our newest claim that we could not lock: another relay holds them.
held_elsewhere AS (
    SELECT
        encounter_uuid,
        min(id) AS first_id
    FROM encounters.outbox
    WHERE
        published_at IS NULL
        AND id < (SELECT max(claimed.id) FROM claimed)
        AND id NOT IN (SELECT claimed.id FROM claimed)
    GROUP BY encounter_uuid
)

SELECT
    outbox.id,
    outbox.message_id,
    outbox.encounter_uuid,
    outbox.routing_key,
    outbox.body,
    round(extract(EPOCH FROM clock_timestamp() - outbox.created_at)::numeric, 3)::float8 AS waited_seconds
FROM claimed
INNER JOIN encounters.outbox ON claimed.id = outbox.id
WHERE
    NOT EXISTS (
        SELECT 1
        FROM held_elsewhere
        WHERE
            held_elsewhere.encounter_uuid = claimed.encounter_uuid
            AND held_elsewhere.first_id < claimed.id
    )
ORDER BY outbox.id;
