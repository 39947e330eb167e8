-- Rollback of 0003: the trigger functions of 0002 again (each change of an encounter renders its
-- whole document; a move reads all of its history), no departure index, default compression.
-- Locks: DROP INDEX takes ACCESS EXCLUSIVE on location_history, SET COMPRESSION on encounter,
-- each for milliseconds.
-- Lint: dropping the helper functions (only these triggers call them) is the point of this
-- rollback; the index is dropped in the rollback's transaction, so not CONCURRENTLY.
-- squawk-ignore-file ban-drop-function, require-concurrent-index-deletion

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE OR REPLACE FUNCTION encounters.render_encounter_document() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    -- encounters_api.encounter_json(NEW), written out so that the rendering is inlined: a
    -- function call per row took twice as long.
    NEW.document := (SELECT d.document::json FROM encounters_api.encounter_document(NEW) AS d (document));
    RETURN NEW;
END;
$$;
COMMENT ON FUNCTION encounters.render_encounter_document() IS
'Renders encounter.document from the row being written and its histories (trigger encounter_document).';

CREATE OR REPLACE FUNCTION encounters.touch_encounter_documents() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    -- Any UPDATE of an encounter re-renders its document (trigger encounter_document): once per
    -- statement and encounter, however many of its history rows the statement wrote.
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
'Re-renders the documents of the encounters whose history rows a statement wrote (triggers *_encounter_document).';

DROP TRIGGER encounter_direct_document_write ON encounters.encounter;
DROP FUNCTION encounters.forget_written_document();
DROP FUNCTION encounters.with_visits_appended(json, text);
DROP FUNCTION encounters.stored_histories(text);
DROP INDEX encounters.location_history_departure_idx;
ALTER TABLE encounters.encounter ALTER COLUMN document SET COMPRESSION default;
