-- Who may do what: each role's privileges on the service's schemas, tables, sequences and functions, for a DBA to review.
--
-- The owner of an object may do anything with it (OWNER); PUBLIC stands for every role. A
-- function that runs with its owner's privileges (SECURITY DEFINER: the writes) says so in
-- runs_as_owner. Privileges a role has through membership of another role are not repeated
-- (psql's \du lists memberships). Covers schemas encounters and encounters_api and yoyo's tables.
-- Returns: one row per role and object, by role, kind and object: kind (schema, table, sequence,
--   function), object, runs_as_owner (boolean; true only for functions), role, privileges
--   (comma-separated: SELECT, EXECUTE, ... or OWNER).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/admin/privileges.sql
WITH objects AS (
    SELECT
        'schema' AS kind,
        n.nspname::text AS object,
        n.nspowner AS owner,
        coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl,
        FALSE AS runs_as_owner
    FROM pg_namespace AS n
    WHERE n.nspname IN ('encounters', 'encounters_api')
    UNION ALL
    SELECT
        CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END AS kind,
        concat(c.relnamespace::regnamespace, '.', quote_ident(c.relname)) AS object,
        c.relowner AS owner,
        coalesce(
            c.relacl, CASE WHEN c.relkind = 'S' THEN acldefault('s', c.relowner) ELSE acldefault('r', c.relowner) END
        ) AS acl,
        FALSE AS runs_as_owner
    FROM pg_class AS c
    WHERE
        c.relkind IN ('r', 'p', 'v', 'm', 'S')
        AND (
            c.relnamespace IN ('encounters'::regnamespace, 'encounters_api'::regnamespace)
            OR (
                c.relnamespace = 'public'::regnamespace
                AND c.relname IN ('_yoyo_migration', '_yoyo_log', '_yoyo_version', 'yoyo_lock')
            )
        )
    UNION ALL
    SELECT
        'function' AS kind,
        p.oid::regprocedure::text AS object,
        p.proowner AS owner,
        coalesce(p.proacl, acldefault('f', p.proowner)) AS acl,
        p.prosecdef AS runs_as_owner
    FROM pg_proc AS p
    WHERE p.pronamespace IN ('encounters'::regnamespace, 'encounters_api'::regnamespace)
),

grants AS (
    SELECT
        o.kind,
        o.object,
        o.runs_as_owner,
        a.grantee,
        a.privilege_type
    FROM objects AS o
    CROSS JOIN LATERAL aclexplode(o.acl) AS a
    WHERE a.grantee <> o.owner  -- the owner's own entries: OWNER says it
    UNION ALL
    SELECT
        o.kind,
        o.object,
        o.runs_as_owner,
        o.owner AS grantee,
        'OWNER' AS privilege_type
    FROM objects AS o
)

SELECT
    g.kind,
    g.object,
    g.runs_as_owner,
    coalesce(r.rolname::text, 'PUBLIC') AS role,
    string_agg(DISTINCT g.privilege_type, ', ' ORDER BY g.privilege_type) AS privileges
FROM grants AS g
LEFT JOIN pg_roles AS r ON g.grantee = r.oid
GROUP BY coalesce(r.rolname::text, 'PUBLIC'), g.kind, g.object, g.runs_as_owner
ORDER BY role, g.kind, g.object;
