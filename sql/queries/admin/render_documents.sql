-- Renders stored encounter documents (encounter.document), as `encounters-service migrate` does
-- after applying sql/functions: the missing ones, or every one after the rendering changed.
--
-- Touching a row is enough: the trigger encounter_document renders the document of every row
-- an UPDATE writes. Re-rendering every encounter rewrites every row: minutes at millions of
-- encounters, holding their row locks until it commits.
-- Parameters:
--   every  boolean  true: every encounter; false: only those without a document
-- Returns: one row: the number of encounters rendered.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v every=false -f sql/queries/admin/render_documents.sql
WITH rendered AS (
    UPDATE encounters.encounter
    SET document = NULL
    WHERE document IS NULL OR :'every'::boolean
    RETURNING 1
)

SELECT count(*) AS rendered FROM rendered;
