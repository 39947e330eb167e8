-- encounters_api.full_document(e, document, expanded, children) → text (JSON)
-- An encounter's full form for a list answer, from its stored document (encounter.document, the
-- full form kept current by trigger: encounters_api.encounter_document(e)) instead of rendering
-- it again: rendering reads both histories (22 µs per encounter); the stored one costs nothing,
-- and adding child_encounter_uuids to its text 1 µs.
--   document  the stored document (the query passes e.document: this file is also applied to a
--             schema rolled back to before that column)
--   expanded  true: with created_by, modified, modified_by (rendered: those keys fall between others)
--   children  null: no child_encounter_uuids; else encounters_api.child_encounter_uuids of the
--             answer's encounters, from which this one's list is taken ([] when it has none)
-- Why the text splice is exact: the stored document is jsonb's text, whose keys are ordered by
-- length, then bytes; the full form of a top-level encounter has no key longer than
-- score_system_history (20 characters), so child_encounter_uuids (21) is its last key, written
-- `, "child_encounter_uuids": [...]` before the closing brace, as jsonb writes it. A child
-- encounter has child_of_encounter_uuid (23), which follows it: that one, the expanded form and
-- a missing document are rendered (tests/sql/test_full_document.py compares every case with
-- encounter_document). Text, not json: the list queries join the documents as text, and a cast
-- to json would read each one again to check it (1-2 µs per document).
-- requires: encounters_api.encounter_json
CREATE OR REPLACE FUNCTION encounters_api.full_document(
    e encounters.encounter, document json, expanded boolean, children jsonb
)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN
CASE
    WHEN document IS NULL OR expanded OR (children IS NOT NULL AND e.child_of_encounter_uuid IS NOT NULL)
        THEN encounters_api.encounter_json(e, FALSE, expanded, children IS NOT NULL)::text
    WHEN children IS NULL THEN document::text
    ELSE
        left(document::text, -1)
        || ', "child_encounter_uuids": '
        || coalesce(children -> e.uuid::text, '[]'::jsonb)::text
        || '}'
END;

COMMENT ON FUNCTION encounters_api.full_document(encounters.encounter, json, boolean, jsonb) IS
'An encounter''s full form from its stored document, optionally expanded and with child_encounter_uuids.';
