-- 0003 history growth: a move no longer renders, nor reads, the encounter's whole location history.
--
-- Purpose: a move (PATCH location_uuid) looked up the latest departure by reading every history
-- row of the encounter, and re-rendered the whole stored document (encounter.document) twice,
-- each time aggregating every history row: 34 ms per move at 1,000 moves, 3.5 ms at 10. Now:
-- - location_history_departure_idx finds the latest departure in one index probe;
-- - encounters.render_encounter_document renders only the row itself when its histories did not
--   change, and copies the stored history arrays in as text (encounters.stored_histories);
-- - encounters.touch_encounter_documents appends a move's entry to the stored location_history
--   as text, and has the document rendered in full only when an entry sorts before others (or
--   on updates and deletes of history rows, and on score system history changes);
-- - trigger encounter_direct_document_write keeps a statement that writes encounter.document
--   itself from having its text taken for the stored histories: it is rendered over, as before;
-- - the stored document is compressed with lz4 instead of pglz (each change rewrites it; lz4
--   compresses and decompresses several times faster): documents written from now on.
-- What still grows: copying and compressing the stored document (and the answer, which holds
-- the whole history: about 190 bytes per stay), not rendering or reading history rows.
-- Needs a PostgreSQL built with lz4 (the Debian, Ubuntu and official images, and the major
-- clouds' are).
-- Locks: CREATE INDEX takes SHARE on location_history (writes to it wait) while it builds:
-- about a second per million rows; SET COMPRESSION takes ACCESS EXCLUSIVE on encounter for
-- milliseconds (a catalog change; no row is rewritten), CREATE TRIGGER SHARE ROW EXCLUSIVE on
-- encounter for milliseconds; CREATE OR REPLACE FUNCTION locks nothing that callers use.
-- Rollback: 0003.history-growth.rollback.sql restores 0002's trigger functions and the default
-- compression, and drops the index and the helper functions.
-- Lint: the index is built in the migration's transaction (yoyo runs each file in one), so it
-- cannot be CONCURRENTLY; location_history is small next to encounter and the build brief.
-- squawk-ignore-file require-concurrent-index-creation

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '300s';

CREATE INDEX location_history_departure_idx
ON encounters.location_history (encounter_uuid, departed_at);
COMMENT ON INDEX encounters.location_history_departure_idx IS 'Latest departure of an encounter (where a move''s stay begins).';

ALTER TABLE encounters.encounter ALTER COLUMN document SET COMPRESSION lz4;

CREATE FUNCTION encounters.stored_histories(document text, OUT visits text, OUT changes text)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog
AS $$
DECLARE
    -- The document is jsonb's text of the full form. A key occurs as `"key": ` only where it is:
    -- quotes inside JSON strings are escaped, and no history entry has these keys. jsonb orders
    -- keys by length, then bytes: location_history is followed by patient_record_uuid, and
    -- score_system_history, the last array, by nothing but child_of_encounter_uuid (a uuid), if
    -- present. split_part works on bytes, in one pass.
    after_visits text := split_part(document, '"location_history": [', 2);
    after_changes text := split_part(document, '"score_system_history": ', 2);
BEGIN
    IF after_visits <> '' AND after_changes <> '' THEN  -- else null: not a stored full form
        visits := '[' || split_part(after_visits, '], "patient_record_uuid": ', 1) || ']';
        changes := rtrim(split_part(after_changes, ', "child_of_encounter_uuid": ', 1), '}');
    END IF;
END;
$$;
COMMENT ON FUNCTION encounters.stored_histories(text) IS
'The two history arrays of a stored document, as JSON text: the triggers copy them instead of rendering them again.';

CREATE FUNCTION encounters.with_visits_appended(document json, entries text) RETURNS json
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog
AS $$
DECLARE
    stored text := document::text || '';  -- one uncompressed copy, as in render_encounter_document
BEGIN
    -- `entries`: location history entries as JSON text, comma-separated, in order. The end of
    -- location_history is found as in encounters.stored_histories. Null when `document` is not
    -- a stored full form.
    IF strpos(stored, '"location_history": [') = 0 THEN
        RETURN NULL;
    END IF;
    RETURN replace(
        stored,
        '], "patient_record_uuid": ',
        CASE WHEN strpos(stored, '"location_history": [], ') > 0 THEN '' ELSE ', ' END
        || entries || '], "patient_record_uuid": '
    )::json;
END;
$$;
COMMENT ON FUNCTION encounters.with_visits_appended(json, text) IS
'A stored document with location history entries (JSON text, in order) appended to its location_history.';

CREATE FUNCTION encounters.forget_written_document() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    -- A statement wrote encounter.document itself: it is derived, so it is rendered over.
    NEW.document := NULL;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION encounters.forget_written_document() IS
'Clears encounter.document when a statement (not the history triggers) writes it, so that it is rendered over '
'(trigger encounter_direct_document_write, which fires before encounter_document).';

CREATE TRIGGER encounter_direct_document_write
BEFORE UPDATE OF document ON encounters.encounter
FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION encounters.forget_written_document();

CREATE OR REPLACE FUNCTION encounters.render_encounter_document() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    -- One uncompressed copy (|| ''): each use of the stored (TOASTed) value would fetch and
    -- decompress it again.
    stored text := NEW.document::text || '';
    bare encounters.encounter := NEW;
    kept record;
BEGIN
    IF TG_OP = 'UPDATE' AND stored IS NOT NULL THEN
        -- The row changed, not its histories (a change of history rows sets document to null,
        -- or appends to it; a statement that writes document gets it set to null first, by
        -- trigger encounter_direct_document_write): render the row without the histories and
        -- copy the stored ones in as text, so that the cost does not grow with their length.
        -- Without a uuid, encounter_document's history look-ups find nothing and render [] in
        -- their place; nor does it need the document, a large value to pass along.
        bare.uuid := NULL;
        bare.document := NULL;
        kept := encounters.stored_histories(stored);
        NEW.document := (
            SELECT replace(
                replace(
                    (d.document || jsonb_build_object('uuid', NEW.uuid))::text,
                    '"location_history": []',
                    '"location_history": ' || kept.visits
                ),
                '"score_system_history": []',
                '"score_system_history": ' || kept.changes
            )::json
            FROM encounters_api.encounter_document(bare) AS d (document)
        );
    END IF;
    IF NEW.document IS NULL THEN
        -- encounters_api.encounter_json(NEW), written out so that the rendering is inlined: a
        -- function call per row took twice as long.
        NEW.document := (SELECT d.document::json FROM encounters_api.encounter_document(NEW) AS d (document));
    END IF;
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION encounters.render_encounter_document() IS
'Renders encounter.document from the row being written: in full when it is null (a new row, or its histories '
'changed), else the row alone with the stored histories copied in (trigger encounter_document).';

CREATE OR REPLACE FUNCTION encounters.touch_encounter_documents() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    -- Any UPDATE of an encounter that sets document to null re-renders it (trigger
    -- encounter_document): once per statement and encounter, however many of its history rows
    -- the statement wrote.
    IF TG_OP = 'INSERT' AND TG_TABLE_NAME = 'location_history' THEN
        -- A move: its entry sorts after every earlier one, and is appended to the stored
        -- document's location_history as text (no re-rendering of the history). Entries that
        -- sort earlier (a create's history list may) re-render the document.
        UPDATE encounters.encounter AS e
        SET document = CASE
            WHEN last_before.id IS NULL
                OR (added.first_arrived_at IS NULL, coalesce(added.first_arrived_at, '-infinity'), added.first_id)
                > (last_before.arrived_at IS NULL, coalesce(last_before.arrived_at, '-infinity'), last_before.id)
                THEN encounters.with_visits_appended(e.document, added.entries)
        END
        FROM (
            SELECT
                n.encounter_uuid,
                string_agg(encounters_api.location_visit_json(n)::text, ', ' ORDER BY n.arrived_at, n.id) AS entries,
                (array_agg(n.arrived_at ORDER BY n.arrived_at, n.id))[1] AS first_arrived_at,
                (array_agg(n.id ORDER BY n.arrived_at, n.id))[1] AS first_id
            FROM new_rows AS n
            GROUP BY n.encounter_uuid
        ) AS added
        LEFT JOIN LATERAL (
            -- The last entry before this statement's, in the document's order (arrived_at, id).
            SELECT l.arrived_at, l.id
            FROM encounters.location_history AS l
            WHERE l.encounter_uuid = added.encounter_uuid
                AND l.id NOT IN (SELECT n.id FROM new_rows AS n)  -- hashed: a create may add 10,000
            ORDER BY l.arrived_at DESC NULLS FIRST, l.id DESC
            LIMIT 1
        ) AS last_before ON true
        WHERE e.uuid = added.encounter_uuid;
        RETURN NULL;
    END IF;
    CASE TG_OP
        WHEN 'INSERT' THEN
            UPDATE encounters.encounter SET document = NULL
            WHERE uuid IN (SELECT encounter_uuid FROM new_rows);
        WHEN 'DELETE' THEN
            UPDATE encounters.encounter SET document = NULL
            WHERE uuid IN (SELECT encounter_uuid FROM old_rows);
        ELSE
            UPDATE encounters.encounter SET document = NULL
            WHERE uuid IN (SELECT encounter_uuid FROM new_rows UNION SELECT encounter_uuid FROM old_rows);
    END CASE;
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION encounters.touch_encounter_documents() IS
'Brings the documents of the encounters whose history rows a statement wrote up to date: appends a move''s '
'entry, else has them rendered again (triggers *_encounter_document).';
