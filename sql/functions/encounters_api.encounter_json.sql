-- encounters_api.encounter_json(e, compact, expanded, with_children) → jsonb
-- One encounter in the API's JSON form, as a value: encounters_api.encounter_document (which
-- defines the form) for callers that render one encounter, such as the write functions.
-- Queries over many encounters join encounter_document laterally instead, which the planner
-- inlines.
-- Without JIT: its plan holds the descendants look-up for every value of with_children, and the
-- planner's estimate of a recursion (hundreds of thousands of rows, whatever it finds) is above
-- jit_above_cost, so in a session with JIT on (psql's default) each call compiled its plan:
-- 280 ms per encounter instead of 0.1 ms.
-- requires: encounters_api.encounter_document
CREATE OR REPLACE FUNCTION encounters_api.encounter_json(
    e encounters.encounter,
    compact boolean DEFAULT FALSE,
    expanded boolean DEFAULT FALSE,
    with_children boolean DEFAULT FALSE
)
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
SET jit = off
BEGIN ATOMIC
    SELECT d.document
    FROM encounters_api.encounter_document(e, compact, expanded, with_children) AS d (document);
END;

COMMENT ON FUNCTION encounters_api.encounter_json(encounters.encounter, boolean, boolean, boolean) IS
'One encounter as the API renders it (encounter_document as a value): full or compact form, optionally expanded '
'and with child_encounter_uuids.';
