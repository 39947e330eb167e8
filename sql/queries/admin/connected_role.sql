-- Who this session is logged in as, against the roles of least privilege (migration 0009).
--
-- `serve` and `relay` run it at start, and warn when they are connected as a superuser or with
-- the owner's privileges: they should connect as the app role.
-- Returns: one row: connected_as (name), superuser (boolean), owner_role and app_role (names, from
--   encounters.database_role), has_owner_privileges (boolean: the owner, or a member of it).
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/admin/connected_role.sql
SELECT
    r.rolname AS connected_as,
    r.rolsuper AS superuser,
    owner.role_name AS owner_role,
    app.role_name AS app_role,
    coalesce(pg_has_role(r.oid, to_regrole(owner.role_name), 'USAGE'), FALSE) AS has_owner_privileges
FROM pg_roles AS r
LEFT JOIN encounters.database_role AS owner ON owner.purpose = 'owner'
LEFT JOIN encounters.database_role AS app ON app.purpose = 'app'
WHERE r.rolname = current_user;
