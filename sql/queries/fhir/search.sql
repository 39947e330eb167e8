-- One page of a FHIR R4 Encounter search, as a Bundle of type searchset (GET /fhir/R4/Encounter, POST …/_search).
--
-- The service decodes the FHIR search parameters (api/fhir.py) into these; every filter given
-- must hold (FHIR: parameters are AND, the values of one parameter OR). An empty array means
-- "no such filter". Deleted encounters are never found (the read answers 410 Gone for them);
-- children are, like any encounter (part-of finds them by parent).
-- Order: by sort_key (admitted_at for `date`, modified for `_lastUpdated`; none by default),
-- then uuid, ascending or descending; paging is by keyset on that order: a page holds the
-- matches after (sort_key, uuid) = (after_key, after_uuid), so a page never repeats or skips
-- an encounter that was there all along, whatever is written meanwhile, as long as its sort
-- value stays (by default the uuid alone, which never changes).
-- Parameters:
--   ids                 uuid[]         _id: any of these; '{}' for no filter
--   patients            uuid[]         patient / subject: any of these
--   part_of             uuid[]         part-of: a child of any of these
--   locations           uuid[]         location: at any of these now, or before (location history)
--   location_groups     text[]         with more than one, each (a uuid[] literal) must match as locations does
--   statuses            text[]         status: any of these FHIR codes (in-progress, finished, …)
--   epr_ids             text[]         identifier: an EPR id among these
--   with_epr_id         boolean        identifier: has an EPR id
--   nothing             boolean        true: the filters contradict each other; nothing matches
--   date_prefixes       text[]         date: each prefix (eq, ge, …) with its value's range …
--   date_lows           timestamptz[]  … from date_lows (the value's start)
--   date_units          interval[]     … for date_units (its precision); each must match the period
--   updated_prefixes    text[]         _lastUpdated: the same, over modified
--   updated_lows        timestamptz[]  see date_lows
--   updated_units       interval[]     see date_units
--   sort                text           '' (by uuid), 'date' or '_lastUpdated'
--   descending          boolean        true: the order descends
--   after_key           timestamptz    the cursor: the page starts after this sort_key (first page: ∓infinity) …
--   after_uuid          uuid           … and this uuid (first page: the nil uuid, or ffffffff-… descending)
--   count               integer        at most this many entries (0: none, e.g. for a total alone)
--   with_total          boolean        true: the Bundle has total (every match, not just the page)
--   self_url            text           the Bundle's self link
--   next_url            text           the next link, but its cursor: the cursor is appended
--   base_url            text           the FHIR base, for each entry's fullUrl
--   epr_identifier_system  text        the system of the EPR identifier (FHIR_EPR_IDENTIFIER_SYSTEM)
-- Returns: one row, one column: the Bundle (jsonb); a next link only when there is a next page.
--   Its cursor: i<uuid> by default, d<microseconds since 1970>_<uuid> for date, l… for _lastUpdated.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -At -v ids='{}' -v patients='{}' -v part_of='{}' \
--     -v locations='{2126393f-c86b-4bf2-9f68-42bb03a7b68a}' -v location_groups='{}' -v statuses='{in-progress}' \
--     -v epr_ids='{}' -v with_epr_id=false -v nothing=false -v date_prefixes='{ge}' -v date_lows='{2026-12-01Z}' \
--     -v date_units='{1 day}' -v updated_prefixes='{}' -v updated_lows='{}' -v updated_units='{}' -v sort= \
--     -v descending=false -v after_key=-infinity -v after_uuid=00000000-0000-0000-0000-000000000000 -v count=50 \
--     -v with_total=true -v self_url=http://localhost/fhir/R4/Encounter -v next_url='http://localhost/fhir/R4/Encounter?_cursor=' \
--     -v base_url=http://localhost/fhir/R4 -v epr_identifier_system=urn:example:epr -f sql/queries/fhir/search.sql
WITH matched AS NOT MATERIALIZED (
    SELECT
        e.uuid,
        CASE :'sort'::text
            WHEN 'date' THEN e.admitted_at
            WHEN '_lastUpdated' THEN e.modified
            ELSE '-infinity'::timestamptz
        END AS sort_key
    FROM encounters.encounter AS e
    WHERE
        e.deleted_at IS NULL
        AND NOT :'nothing'::boolean
        AND (cardinality(:'ids'::uuid[]) = 0 OR e.uuid = ANY(:'ids'::uuid[]))
        AND (cardinality(:'patients'::uuid[]) = 0 OR e.patient_uuid = ANY(:'patients'::uuid[]))
        AND (cardinality(:'part_of'::uuid[]) = 0 OR e.child_of_encounter_uuid = ANY(:'part_of'::uuid[]))
        AND (cardinality(:'epr_ids'::text[]) = 0 OR e.epr_encounter_id = ANY(:'epr_ids'::text[]))
        AND (NOT :'with_epr_id'::boolean OR e.epr_encounter_id IS NOT NULL)
        AND encounters_api.fhir_status_matches(e.discharged_at, :'statuses'::text[])
        -- location: at one of them now, or before. The encounters that were there before (and have
        -- a status asked for: in progress, a few of them) are looked up once, as an array, so that
        -- both tests are index conditions (a BitmapOr of encounter_location_idx and the primary key).
        AND (
            cardinality(:'locations'::uuid[]) = 0
            OR e.location_uuid = ANY(:'locations'::uuid[])
            OR e.uuid = ANY((
                SELECT array_agg(o.uuid)
                FROM encounters.location_history AS h
                INNER JOIN encounters.encounter AS o ON h.encounter_uuid = o.uuid
                WHERE
                    h.location_uuid = ANY(:'locations'::uuid[])
                    AND o.deleted_at IS NULL
                    AND encounters_api.fhir_status_matches(o.discharged_at, :'statuses'::text[])
            )::uuid[])
        )
        AND (
            cardinality(:'location_groups'::text[]) < 2
            OR NOT EXISTS (
                SELECT
                FROM unnest(:'location_groups'::text[]) AS g (uuids)
                WHERE
                    NOT e.location_uuid = ANY(g.uuids::uuid[])
                    AND NOT EXISTS (
                        SELECT
                        FROM encounters.location_history AS h
                        WHERE h.encounter_uuid = e.uuid AND h.location_uuid = ANY(g.uuids::uuid[])
                    )
            )
        )
        AND NOT EXISTS (
            SELECT
            FROM
                unnest(:'date_prefixes'::text[], :'date_lows'::timestamptz[], :'date_units'::interval[])
                    AS d (prefix, low, unit)
            WHERE NOT encounters_api.fhir_date_matches(
                d.prefix, d.low, d.low + d.unit, e.admitted_at, coalesce(e.discharged_at, 'infinity')
            )
        )
        AND NOT EXISTS (
            SELECT
            FROM
                unnest(:'updated_prefixes'::text[], :'updated_lows'::timestamptz[], :'updated_units'::interval[])
                    AS u (prefix, low, unit)
            WHERE NOT encounters_api.fhir_date_matches(u.prefix, u.low, u.low + u.unit, e.modified, e.modified)
        )
),

-- The page and one more match, which says whether there is a next page: only the keys, so that
-- what is sorted is small (the page's encounters are read again to be rendered). By default the
-- keyset test is on uuid alone, an index condition: a page starts where the last one ended.
page AS (
    SELECT
        m.uuid,
        m.sort_key
    FROM matched AS m
    WHERE
        CASE
            WHEN :'sort'::text = '' AND :'descending'::boolean THEN m.uuid < :'after_uuid'::uuid
            WHEN :'sort'::text = '' THEN m.uuid > :'after_uuid'::uuid
            WHEN :'descending'::boolean THEN (m.sort_key, m.uuid) < (:'after_key'::timestamptz, :'after_uuid'::uuid)
            ELSE (m.sort_key, m.uuid) > (:'after_key'::timestamptz, :'after_uuid'::uuid)
        END
    ORDER BY
        (CASE WHEN NOT :'descending'::boolean THEN m.sort_key END) ASC,
        (CASE WHEN :'descending'::boolean THEN m.sort_key END) DESC,
        (CASE WHEN NOT :'descending'::boolean THEN m.uuid END) ASC,
        (CASE WHEN :'descending'::boolean THEN m.uuid END) DESC
    LIMIT :'count'::integer + 1
),

numbered AS (
    SELECT
        p.uuid,
        p.sort_key,
        row_number() OVER (
            ORDER BY
                (CASE WHEN NOT :'descending'::boolean THEN p.sort_key END) ASC,
                (CASE WHEN :'descending'::boolean THEN p.sort_key END) DESC,
                (CASE WHEN NOT :'descending'::boolean THEN p.uuid END) ASC,
                (CASE WHEN :'descending'::boolean THEN p.uuid END) DESC
        ) AS n
    FROM page AS p
)

SELECT
    jsonb_build_object(
        'resourceType', 'Bundle',
        'type', 'searchset',
        'link', jsonb_build_array(jsonb_build_object('relation', 'self', 'url', :'self_url'::text))
        || CASE
            WHEN :'count'::integer > 0 AND max(p.n) > :'count'::integer
                THEN jsonb_build_array(jsonb_build_object(
                    'relation', 'next',
                    'url', :'next_url'::text || (
                        array_agg(
                            CASE
                                WHEN :'sort'::text = '' THEN 'i' || p.uuid
                                ELSE
                                    CASE WHEN :'sort'::text = 'date' THEN 'd' ELSE 'l' END
                                    || (extract(EPOCH FROM p.sort_key) * 1000000)::bigint || '_' || p.uuid
                            END
                        ) FILTER (WHERE p.n = :'count'::integer)
                    )[1]
                ))
            ELSE '[]'::jsonb
        END
    )
    || CASE
        WHEN :'with_total'::boolean THEN jsonb_build_object('total', (SELECT count(*) FROM matched))
        ELSE '{}'::jsonb
    END
    || CASE
        WHEN min(p.n) <= :'count'::integer
            THEN jsonb_build_object('entry', jsonb_agg(
                jsonb_build_object(
                    'fullUrl', :'base_url'::text || '/Encounter/' || p.uuid,
                    'resource', r.resource,
                    'search', jsonb_build_object('mode', 'match')
                ) ORDER BY p.n
            ) FILTER (WHERE p.n <= :'count'::integer))
        ELSE '{}'::jsonb
    END AS bundle
FROM numbered AS p
LEFT JOIN LATERAL (
    SELECT f.resource
    FROM encounters.encounter AS e
    CROSS JOIN
        LATERAL encounters_api.fhir_encounter_document(e, :'epr_identifier_system'::text, e.document) AS f (resource)
    WHERE e.uuid = p.uuid AND p.n <= :'count'::integer
) AS r ON TRUE;
