-- encounters_api.claim_outbox(batch_size) → the next outbox messages to publish, locked
-- The relay's claim (sql/queries/relay/claim.sql): locks the oldest waiting rows with FOR UPDATE
-- SKIP LOCKED, until the caller's transaction ends, so that a second relay skips them; returns
-- them in id order, leaving out (locked, unreturned: they come back in a later batch) any row
-- whose encounter has an older waiting row held by another relay. Rows without an encounter have
-- no order to keep and are never held back. Runs as the owner (SECURITY DEFINER): the service's
-- role reads the outbox but may not lock or change its rows itself.
CREATE OR REPLACE FUNCTION encounters_api.claim_outbox(batch_size integer)
RETURNS TABLE (
    id bigint,
    message_id uuid,
    encounter_uuid uuid,
    routing_key text,
    body jsonb,
    waited_seconds float8
)
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, encounters, pg_temp
BEGIN ATOMIC
    WITH claimed AS (
        SELECT
            o.id,
            o.encounter_uuid
        FROM encounters.outbox AS o
        WHERE o.published_at IS NULL
        ORDER BY o.id
        LIMIT claim_outbox.batch_size
        FOR UPDATE SKIP LOCKED
    ),

    -- Waiting rows below our newest claim that we could not lock: another relay holds them.
    held_elsewhere AS (
        SELECT
            o.encounter_uuid,
            min(o.id) AS first_id
        FROM encounters.outbox AS o
        WHERE
            o.published_at IS NULL
            AND o.id < (SELECT max(claimed.id) FROM claimed)
            AND o.id NOT IN (SELECT claimed.id FROM claimed)
        GROUP BY o.encounter_uuid
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
END;

COMMENT ON FUNCTION encounters_api.claim_outbox(integer) IS
'Locks and returns the next outbox messages the relay may publish, oldest first (in its transaction).';
