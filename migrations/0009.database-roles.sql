-- 0009 database roles: least privilege for the service, its migrations and analysts.
--
-- depends: 0008.fhir-search
--
-- Purpose: three roles instead of one superuser for everything. The owner (default
-- encounters_owner) owns the schemas, every object in them and yoyo's tables, and runs the
-- migrations; the app (encounters_app), which `serve` and `relay` connect as, reads every table
-- and executes the encounters_api functions, and writes only through them (the writing ones are
-- SECURITY DEFINER, run as the owner); the analyst (encounters_analyst) reads every table and
-- executes the reading functions only. Neither may change the schema, TRUNCATE or write a table.
-- The names come from the settings encounters.owner_role, encounters.app_role and
-- encounters.analyst_role of the migrating session (`migrate` sets them from DATABASE_OWNER_ROLE,
-- DATABASE_APP_ROLE, DATABASE_ANALYST_ROLE), and are kept in encounters.database_role.
-- encounters.grant_privileges() creates the roles that do not exist yet (roles belong to the
-- cluster: another database of the server may have made them), hands the objects to the owner
-- and grants; `migrate upgrade` runs it again after re-applying sql/functions, so that new
-- functions get the same grants. Default privileges do the same for what the owner creates.
-- Who runs it: a superuser (or a role that may create roles and SET ROLE to the owner), once;
-- afterwards `migrate` may run as the owner.
-- Backfill: none. Locks: ALTER TABLE ... OWNER takes ACCESS EXCLUSIVE on each table, for
-- milliseconds, once (afterwards only a new object that the owner does not own yet).
-- Rollback: 0009.database-roles.rollback.sql revokes the grants and drops the function and the
-- table; the roles stay (other databases may use them) and the objects keep their owner.

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE TABLE encounters.database_role (
    purpose text PRIMARY KEY,
    role_name name NOT NULL UNIQUE,
    CONSTRAINT database_role_purpose CHECK (purpose IN ('owner', 'app', 'analyst'))
);
COMMENT ON TABLE encounters.database_role IS
'The roles of least privilege (migration 0009): who owns the schema, who the service and analysts connect as.';
COMMENT ON COLUMN encounters.database_role.purpose IS 'owner (migrations), app (serve and relay) or analyst (reads).';
COMMENT ON COLUMN encounters.database_role.role_name IS 'The PostgreSQL role.';

INSERT INTO encounters.database_role (purpose, role_name)
SELECT
    purpose,
    coalesce(
        nullif(current_setting('encounters.' || purpose || '_role', TRUE), ''), 'encounters_' || purpose
    ) AS role_name
FROM unnest(ARRAY['owner', 'app', 'analyst']) AS purpose;

CREATE FUNCTION encounters.grant_privileges() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
DECLARE
    owner_role name := (SELECT r.role_name FROM encounters.database_role AS r WHERE r.purpose = 'owner');
    app_role name := (SELECT r.role_name FROM encounters.database_role AS r WHERE r.purpose = 'app');
    analyst_role name := (SELECT r.role_name FROM encounters.database_role AS r WHERE r.purpose = 'analyst');
    schemas regnamespace[] := ARRAY['encounters'::regnamespace, 'encounters_api'::regnamespace];
    yoyo_tables text[] := ARRAY['_yoyo_migration', '_yoyo_log', '_yoyo_version', 'yoyo_lock'];
    role_name name;
    statement text;
    f record;
BEGIN
    IF owner_role IS NULL THEN
        RETURN;  -- no roles recorded (a schema built from the snapshot, sql/schema)
    END IF;
    -- Roles belong to the cluster: another database's migration may have made them, or be making
    -- them now (its CREATE ROLE commits first, and ours then finds the name taken).
    FOREACH role_name IN ARRAY ARRAY[owner_role, app_role, analyst_role] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I LOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
    -- The owner runs the migrations: new schemas (a rollback to nothing, then an upgrade) and yoyo's
    -- tables. Granted once (by a superuser): the owner itself may not grant them again. Before the
    -- objects are handed over: a new owner needs CREATE where they are.
    IF NOT has_database_privilege(owner_role, current_database(), 'CREATE') THEN
        EXECUTE format('GRANT CREATE ON DATABASE %I TO %I', current_database(), owner_role);
    END IF;
    IF NOT has_schema_privilege(owner_role, 'public', 'CREATE') THEN
        EXECUTE format('GRANT USAGE, CREATE ON SCHEMA public TO %I', owner_role);
    END IF;
    -- The owner owns the schemas, everything in them and yoyo's tables; only what it does not own
    -- yet is altered (ALTER ... OWNER locks a table).
    FOR statement IN
        SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, owner_role)
        FROM pg_namespace AS n
        WHERE n.oid = ANY(schemas) AND n.nspowner <> to_regrole(owner_role)
        UNION ALL
        SELECT format('ALTER TABLE %s OWNER TO %I', c.oid::regclass, owner_role)
        FROM pg_class AS c
        WHERE
            c.relowner <> to_regrole(owner_role)
            AND (
                (c.relnamespace = ANY(schemas) AND c.relkind IN ('r', 'p', 'v', 'm'))
                OR (c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname = ANY(yoyo_tables))
            )
        UNION ALL
        SELECT format('ALTER FUNCTION %s OWNER TO %I', p.oid::regprocedure, owner_role)
        FROM pg_proc AS p
        WHERE p.pronamespace = ANY(schemas) AND p.proowner <> to_regrole(owner_role)
    LOOP
        EXECUTE statement;
    END LOOP;
    -- The app and the analyst read every table, and write none.
    EXECUTE format('GRANT USAGE ON SCHEMA encounters, encounters_api TO %I, %I', app_role, analyst_role);
    EXECUTE format(
        'REVOKE INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA encounters'
        ' FROM PUBLIC, %I, %I',
        app_role, analyst_role
    );
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA encounters TO %I, %I', app_role, analyst_role);
    EXECUTE format('GRANT SELECT ON public._yoyo_migration TO %I, %I', app_role, analyst_role);
    -- Functions: none for PUBLIC; every encounters_api function for the app (the writes run as
    -- the owner: SECURITY DEFINER); for the analyst, those that run with the caller's privileges
    -- (the reads: an analyst's are read-only), none that runs with the owner's.
    REVOKE ALL ON ALL FUNCTIONS IN SCHEMA encounters, encounters_api FROM PUBLIC;
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA encounters_api TO %I', app_role);
    FOR f IN SELECT p.oid::regprocedure AS signature, p.prosecdef FROM pg_proc AS p WHERE p.pronamespace = schemas[2]
    LOOP
        EXECUTE format(
            CASE WHEN f.prosecdef THEN 'REVOKE EXECUTE ON FUNCTION %s FROM %I' ELSE 'GRANT EXECUTE ON FUNCTION %s TO %I' END,
            f.signature, analyst_role
        );
    END LOOP;
    -- The same for what later migrations create as the owner (the function step gives the analyst
    -- the reads among new functions, by this function).
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC', owner_role);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA encounters GRANT SELECT ON TABLES TO %I, %I',
        owner_role, app_role, analyst_role
    );
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA encounters_api GRANT EXECUTE ON FUNCTIONS TO %I',
        owner_role, app_role
    );
END;
$$;
COMMENT ON FUNCTION encounters.grant_privileges() IS
'Creates the roles of encounters.database_role if need be, hands every object to the owner and grants (migration 0009).';

-- (in a DO block: yoyo prints what a SELECT returns)
DO $$ BEGIN PERFORM encounters.grant_privileges(); END $$;
