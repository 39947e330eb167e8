-- encounters_api.fhir_date_matches(prefix, low, high, start, finish) → boolean
-- Whether a FHIR date search value matches a target range, as FHIR R4 defines each prefix
-- (https://hl7.org/fhir/R4/search.html#prefix). The search value is the range [low, high): a
-- value names its whole precision (2026-12-01 is that day, UTC unless it says otherwise). The
-- target is [start, finish]: an encounter's period, 'infinity' as the end of an open one, or
-- one instant (start = finish) for _lastUpdated.
-- - eq: the value's range contains the target; ne: it does not;
-- - gt, lt: the target reaches after, before, the value's range; ge, le: gt or eq, lt or eq;
-- - sa, eb: the target starts after, ends before, the value's range;
-- - ap: the target overlaps the value's range widened on each side by a tenth of the time
--   between the value and now (this server's choice: FHIR leaves ap to the server).
-- Example: psql -c "SELECT encounters_api.fhir_date_matches('ge', '2026-12-01Z', '2026-12-02Z', now(), 'infinity')"
CREATE OR REPLACE FUNCTION encounters_api.fhir_date_matches(
    prefix text, low timestamptz, high timestamptz, start timestamptz, finish timestamptz
)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
RETURN CASE prefix
    WHEN 'eq' THEN start >= low AND finish < high
    WHEN 'ne' THEN NOT (start >= low AND finish < high)
    WHEN 'gt' THEN finish >= high
    WHEN 'lt' THEN start < low
    WHEN 'ge' THEN finish >= high OR start >= low
    WHEN 'le' THEN start < low OR finish < high
    WHEN 'sa' THEN start >= high
    WHEN 'eb' THEN finish < low
    WHEN 'ap'
        THEN
            start < high + make_interval(secs => abs(extract(EPOCH FROM now() - low))::float8 / 10)
            AND finish >= low - make_interval(secs => abs(extract(EPOCH FROM now() - low))::float8 / 10)
END;

COMMENT ON FUNCTION encounters_api.fhir_date_matches(text, timestamptz, timestamptz, timestamptz, timestamptz) IS
'Whether a FHIR date search value (prefix, range [low, high)) matches a target range [start, finish].';
