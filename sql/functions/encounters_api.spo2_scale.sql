-- encounters_api.spo2_scale(asked) → smallint
-- The SpO2 scale a write asked for, as stored: 1 or 2 (null stays null), else EN400 (→ 400). The
-- writers take the value as any number and call this after they have checked that the caller may
-- ask for the change at all (403 first, as in the original service, which stored any small
-- integer; this service keeps the two NEWS2 scales, a deliberate change).
-- Example: psql -c "SELECT encounters_api.spo2_scale(2)"
CREATE OR REPLACE FUNCTION encounters_api.spo2_scale(asked numeric)
RETURNS smallint
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog
AS $$
BEGIN
    IF asked NOT IN (1, 2) THEN
        RAISE EXCEPTION USING ERRCODE = 'EN400', MESSAGE = format('spo2_scale must be 1 or 2, not %s', asked);
    END IF;
    RETURN asked;
END;
$$;

COMMENT ON FUNCTION encounters_api.spo2_scale(numeric) IS
'The SpO2 scale asked for, checked: 1 or 2 (null stays null), else 400 (EN400).';
