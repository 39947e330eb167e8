-- encounters_api.fhir_extension(url, value_type, value) → jsonb
-- One FHIR extension with a value, {"url": url, "value<Type>": value}, or null when the value is
-- null (an extension must carry a value or extensions of its own, so one without is left out).
-- encounters_api.fhir_encounter builds its extensions with it, and drops the nulls.
-- Example: psql -c "SELECT encounters_api.fhir_extension('scoreSystem', 'String', 'news2')"
CREATE OR REPLACE FUNCTION encounters_api.fhir_extension(url text, value_type text, value anyelement)
RETURNS jsonb
LANGUAGE sql
STABLE
PARALLEL SAFE
-- A quoted body: an unquoted one cannot take a polymorphic argument. STABLE, as jsonb_build_object
-- is: a function declared more strictly than its body is never inlined (a call then cost 3×).
AS $$
    SELECT CASE WHEN value IS NOT NULL THEN jsonb_build_object('url', url, 'value' || value_type, value) END
$$;

COMMENT ON FUNCTION encounters_api.fhir_extension(text, text, anyelement) IS
'One FHIR extension {"url", "value<Type>"}, or null when the value is null.';
