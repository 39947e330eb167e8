-- encounters_api.iso_utc(at timestamptz) → text
-- A time as the API writes it: UTC, milliseconds, Z (2018-01-01T00:00:00.000Z); null stays null.
-- STABLE, as to_char is: a function declared more strictly than its body is never inlined, and
-- a call per rendered time costs more than the formatting itself.
CREATE OR REPLACE FUNCTION encounters_api.iso_utc(at timestamptz)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');

COMMENT ON FUNCTION encounters_api.iso_utc(timestamptz) IS
'A time as the API writes it: UTC, milliseconds, Z; null stays null.';
