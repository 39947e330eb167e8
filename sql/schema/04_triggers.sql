-- Schema snapshot (triggers): Trigger plumbing: the outbox wakes the event relay (LISTEN encounters_outbox);
-- every change of an encounter or of its histories brings encounter.document up to date.
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

CREATE TRIGGER encounter_direct_document_write
BEFORE UPDATE OF document ON encounters.encounter
FOR EACH ROW WHEN (pg_trigger_depth() = 0) EXECUTE FUNCTION encounters.forget_written_document();

CREATE FUNCTION encounters.render_encounter_document() RETURNS trigger
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

CREATE TRIGGER encounter_document
BEFORE INSERT OR UPDATE ON encounters.encounter
FOR EACH ROW EXECUTE FUNCTION encounters.render_encounter_document();

CREATE FUNCTION encounters.track_encounter_change() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    this_transaction xid8 := pg_current_xact_id();
BEGIN
    -- BEFORE triggers fire in name order: this one (encounter_track_change) after
    -- encounter_document, so NEW.document is the document being stored. The three columns are
    -- derived: whatever a statement wrote into them is replaced.
    IF TG_OP = 'INSERT' THEN
        NEW.version := 1;
        NEW.versioned_xid := this_transaction;
        NEW.changed_xid := this_transaction;
        RETURN NEW;
    END IF;
    NEW.version := OLD.version;
    NEW.versioned_xid := OLD.versioned_xid;
    NEW.changed_xid := OLD.changed_xid;
    IF NEW.document::text IS DISTINCT FROM OLD.document::text THEN
        -- The full form changed: a new version, once per transaction.
        IF OLD.versioned_xid IS DISTINCT FROM this_transaction THEN
            NEW.version := coalesce(OLD.version, 1) + 1;  -- null: 1 (before 0005)
            NEW.versioned_xid := this_transaction;
        END IF;
        NEW.changed_xid := this_transaction;
    ELSIF (NEW.modified, NEW.modified_by) IS DISTINCT FROM (OLD.modified, OLD.modified_by) THEN
        -- The expanded form changed (the change feed shows it), the full form did not: same version.
        NEW.changed_xid := this_transaction;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER encounter_track_change
BEFORE INSERT OR UPDATE ON encounters.encounter
FOR EACH ROW EXECUTE FUNCTION encounters.track_encounter_change();

CREATE FUNCTION encounters.keep_encounter_version() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    IF NEW.versioned_xid IS DISTINCT FROM pg_current_xact_id() OR NEW.document IS NULL THEN
        -- the write made no version (e.g. a PATCH that changed nothing), or there is no stored
        -- document to keep (the schema of a rollback to before 0002)
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.versioned_xid IS DISTINCT FROM NEW.versioned_xid AND OLD.document IS NOT NULL THEN
        -- This transaction's first version: keep the one before too, if it was made before this
        -- history was (migration 0006).
        INSERT INTO encounters.encounter_history (encounter_uuid, version, modified, modified_by, document)
        VALUES (OLD.uuid, coalesce(OLD.version, 1), OLD.modified, OLD.modified_by, OLD.document)
        ON CONFLICT (encounter_uuid, version) DO NOTHING;
    END IF;
    INSERT INTO encounters.encounter_history AS h (encounter_uuid, version, modified, modified_by, document)
    VALUES (NEW.uuid, NEW.version, NEW.modified, NEW.modified_by, NEW.document)
    ON CONFLICT (encounter_uuid, version) DO UPDATE
        SET modified = excluded.modified, modified_by = excluded.modified_by, document = excluded.document;
    RETURN NULL;
END;
$$;

CREATE TRIGGER encounter_keep_version
AFTER INSERT OR UPDATE ON encounters.encounter
FOR EACH ROW EXECUTE FUNCTION encounters.keep_encounter_version();

CREATE FUNCTION encounters.touch_encounter_documents() RETURNS trigger
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
