-- The change feed (GET /dhos/v2/encounters/changes): the encounters that changed after a position,
-- in the order of the transactions that changed them, each once, in its current expanded full
-- form; deleted and child encounters included.
--
-- Why no commit is ever skipped. Every write of an encounter stores, in encounter.changed_xid,
-- the id of its transaction (pg_current_xact_id(), trigger encounter_track_change), and the
-- encounter's place in the feed is (changed_xid, uuid) (changed_xid null: last written before
-- migration 0004, taken for 1, as encounter_change_idx indexes it). The feed hands out only places whose
-- transaction is older than pg_snapshot_xmin(pg_current_snapshot()): the oldest transaction
-- still running when this statement's snapshot was taken. Every transaction older than that has
-- ended, so the set of places below it is final:
--   - the snapshot sees every committed one of them, and none of a rolled-back one;
--   - no later write can take a place below it, since a transaction id is never handed out
--     twice and every transaction that may still write is at least that old;
--   - a transaction that began first but commits last waits, with everything after it, until it
--     has ended (timestamps cannot give this: `modified` is set before the commit).
-- So a reader that asks again after the last place it was given misses nothing and repeats
-- nothing: an encounter changed again takes a new, later place (and comes again later). The
-- encounter is read as it is now, a committed state. Order within one transaction (its changes
-- become visible together) is by uuid. The cost: one long-running writing transaction (of any
-- database of the server, e.g. an idle-in-transaction session, a prepared transaction) holds
-- the feed back until it ends; read-only transactions do not (they take no transaction id).
-- The service's own writes are single statements within statement_timeout.
-- Parameters:
--   after_transaction  xid8     the transaction of the last place read ('0': from the beginning)
--   after_uuid         uuid     the uuid of the last place read (00000000-0000-0000-0000-000000000000: from the beginning)
--   page_size          integer  at most this many encounters
-- Returns: one row, one column: a JSON object {"encounters": [...] (in feed order; [] when none),
--   "last_transaction", "last_uuid" (the page's last place: pass them as after_* for the next
--   page; null when the page is empty: ask again later with the same place), "more" (true when
--   more changes can be read now)}. Read it with `psql -At … | jq .`
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v after_transaction=0 -v after_uuid=00000000-0000-0000-0000-000000000000 \
--     -v page_size=100 -f sql/queries/encounters/changes.sql
WITH horizon AS (
    SELECT pg_snapshot_xmin(pg_current_snapshot()) AS oldest_running
),

page AS (
    SELECT
        e.uuid,
        e AS encounter,
        coalesce(e.changed_xid, '1'::xid8) AS transaction
    FROM encounters.encounter AS e
    WHERE
        (coalesce(e.changed_xid, '1'::xid8), e.uuid) > (:'after_transaction'::xid8, :'after_uuid'::uuid)
        AND coalesce(e.changed_xid, '1'::xid8) < (SELECT h.oldest_running FROM horizon AS h)
    ORDER BY coalesce(e.changed_xid, '1'::xid8) ASC, e.uuid ASC
    LIMIT :'page_size'::integer
),

last_place AS (
    SELECT
        p.transaction,
        p.uuid
    FROM page AS p
    ORDER BY p.transaction DESC, p.uuid DESC
    LIMIT 1
)

SELECT
    json_build_object(
        'last_transaction', l.transaction,
        'last_uuid', l.uuid,
        'more', (
            -- false for an empty page: no place compares greater than a null one
            SELECT count(*) > 0
            FROM (
                SELECT
                FROM encounters.encounter AS e
                WHERE
                    (coalesce(e.changed_xid, '1'::xid8), e.uuid) > (l.transaction, l.uuid)
                    AND coalesce(e.changed_xid, '1'::xid8) < (SELECT h.oldest_running FROM horizon AS h)
                ORDER BY coalesce(e.changed_xid, '1'::xid8), e.uuid
                LIMIT 1
            ) AS later
        ),
        'encounters', (
            SELECT
                coalesce(
                    json_agg(
                        coalesce((p.encounter).document::jsonb, encounters_api.encounter_json(p.encounter))
                        || jsonb_build_object(
                            'created_by', (p.encounter).created_by,
                            'modified', encounters_api.iso_utc((p.encounter).modified),
                            'modified_by', (p.encounter).modified_by
                        )
                        ORDER BY p.transaction, p.uuid
                    ),
                    '[]'::json
                )
            FROM page AS p
        )
    ) AS page
-- one row, also when the page is empty:
FROM (SELECT) AS one  -- noqa: ST11
LEFT JOIN last_place AS l ON TRUE;
