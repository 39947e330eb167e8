-- How many stored encounter documents `migrate upgrade` is about to render (admin/render_documents.sql).
--
-- Parameters:
--   every  boolean  true: every encounter (the rendering changed); false: only those without a document
-- Returns: one row: the number of encounters whose document would be rendered.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v every=false -f sql/queries/admin/documents_to_render.sql
SELECT count(*) AS to_render
FROM encounters.encounter
WHERE document IS NULL OR :'every'::boolean;
