-- 0002 encounter document: each encounter keeps its full JSON form, rendered when it changes.
--
-- Purpose: the ward lists (POST /dhos/v1/encounter/locations and /patients) return thousands of
-- full-form encounters per call; building that JSON took most of their time. encounter.document
-- holds each encounter's full form as encounters_api.encounter_json renders it, kept current by
-- triggers: on the encounter itself (BEFORE INSERT OR UPDATE renders it from the new row and
-- the histories) and on its two history tables (a change touches the encounter, which
-- re-renders it). The reads fall back to rendering when a document is missing.
-- Filling: `encounters-service migrate` renders every missing document after it has applied
-- sql/functions (the renderer lives there), and all of them again whenever a file that the
-- rendering depends on changes; this migration writes no rows.
-- Locks: ADD COLUMN without a default is a catalog change; ACCESS EXCLUSIVE on encounter,
-- location_history and score_system_history for milliseconds (lock_timeout below).
-- Rollback: 0002.encounter-document.rollback.sql drops the triggers, their functions and the column.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

ALTER TABLE encounters.encounter ADD COLUMN document json;
COMMENT ON COLUMN encounters.encounter.document IS
'Derived: the full JSON form of the encounter (encounters_api.encounter_json), rendered by trigger on every change '
'of the encounter or its histories. Never written directly; any UPDATE of the row re-renders it.';

CREATE FUNCTION encounters.render_encounter_document() RETURNS trigger
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

CREATE TRIGGER encounter_document
BEFORE INSERT OR UPDATE ON encounters.encounter
FOR EACH ROW EXECUTE FUNCTION encounters.render_encounter_document();

CREATE FUNCTION encounters.touch_encounter_documents() RETURNS trigger
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

CREATE TRIGGER location_history_insert_encounter_document
AFTER INSERT ON encounters.location_history
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION encounters.touch_encounter_documents();

CREATE TRIGGER location_history_update_encounter_document
AFTER UPDATE ON encounters.location_history
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION encounters.touch_encounter_documents();

CREATE TRIGGER location_history_delete_encounter_document
AFTER DELETE ON encounters.location_history
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION encounters.touch_encounter_documents();

CREATE TRIGGER score_system_history_insert_encounter_document
AFTER INSERT ON encounters.score_system_history
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION encounters.touch_encounter_documents();

CREATE TRIGGER score_system_history_update_encounter_document
AFTER UPDATE ON encounters.score_system_history
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION encounters.touch_encounter_documents();

CREATE TRIGGER score_system_history_delete_encounter_document
AFTER DELETE ON encounters.score_system_history
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION encounters.touch_encounter_documents();
