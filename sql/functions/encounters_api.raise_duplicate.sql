-- encounters_api.raise_duplicate(rule, e) → never returns
-- A unique index (named `rule`) refused encounter `e`, written concurrently with its duplicate:
-- raises EN409 (→ 409) with the message of encounters_api.duplicate_message, which by now sees
-- the committed winner. Writers call it from their `EXCEPTION WHEN unique_violation` handler.
-- requires: encounters_api.duplicate_message
CREATE OR REPLACE FUNCTION encounters_api.raise_duplicate(rule text, e encounters.encounter)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, encounters, encounters_api
AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'EN409',
        MESSAGE = coalesce(
            encounters_api.duplicate_message(rule, e),
            'a duplicate encounter was written at the same time'
        );
END;
$$;

COMMENT ON FUNCTION encounters_api.raise_duplicate(text, encounters.encounter) IS
'Raises EN409 (409) saying which encounter a concurrently refused write duplicates.';
