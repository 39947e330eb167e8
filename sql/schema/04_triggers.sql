-- Schema snapshot (triggers): Trigger plumbing: the outbox wakes the event relay (LISTEN encounters_outbox);
-- every change of an encounter or of its histories re-renders encounter.document.
-- The current schema as one declarative picture; migrations/ is how databases get here.
-- tests/migrations/test_schema_parity.py fails if this snapshot and the migrations disagree.

CREATE FUNCTION encounters.notify_outbox() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify('encounters_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify
AFTER INSERT ON encounters.outbox
FOR EACH STATEMENT EXECUTE FUNCTION encounters.notify_outbox();

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
