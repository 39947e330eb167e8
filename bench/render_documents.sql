-- Renders the stored documents (encounter.document) of one share of the encounters, as the
-- trigger encounter_document does. bench/bench.py seeds with the document
-- triggers off, since rendering row by row as they do took most of the seeding, then runs
-- `parts` of these statements at once, one per CPU.
-- Parameters:
--   part   integer  which share: 0 .. parts - 1
--   parts  integer  how many shares
-- Returns: one row: the number of encounters rendered.
-- Example:
--   psql -v part=0 -v parts=1 -f bench/render_documents.sql
WITH rendered AS (
    UPDATE encounters.encounter AS e
    SET document = (SELECT d.document::json FROM encounters_api.encounter_document(e) AS d (document))
    WHERE get_byte(uuid_send(e.uuid), 0) % :'parts'::integer = :'part'::integer
    RETURNING 1
)
SELECT count(*) AS rendered FROM rendered;
