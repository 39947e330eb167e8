-- Rollback of 0009: one role for everything again; the grants to the app and the analyst are
-- revoked, PUBLIC may execute the functions again (PostgreSQL's default), and the function and the
-- table go. The roles stay (they belong to the cluster: other databases may use them; DROP ROLE
-- them by hand when none does) and the objects keep their owner.
-- Locks: REVOKE and DROP FUNCTION lock nothing that callers use; DROP TABLE locks only
-- encounters.database_role, which the service reads at start only.
-- Lint: dropping the role list and its function is the point of this rollback.
-- squawk-ignore-file ban-drop-table, ban-drop-function

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

DO $$
DECLARE
    owner_role name := (SELECT r.role_name FROM encounters.database_role AS r WHERE r.purpose = 'owner');
    app_role name := (SELECT r.role_name FROM encounters.database_role AS r WHERE r.purpose = 'app');
    analyst_role name := (SELECT r.role_name FROM encounters.database_role AS r WHERE r.purpose = 'analyst');
BEGIN
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I GRANT EXECUTE ON FUNCTIONS TO PUBLIC', owner_role);
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA encounters REVOKE SELECT ON TABLES FROM %I, %I',
        owner_role, app_role, analyst_role
    );
    EXECUTE format(
        'ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA encounters_api REVOKE EXECUTE ON FUNCTIONS FROM %I',
        owner_role, app_role
    );
    EXECUTE format(
        'REVOKE ALL ON ALL FUNCTIONS IN SCHEMA encounters, encounters_api FROM %I, %I', app_role, analyst_role
    );
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA encounters, encounters_api TO PUBLIC;
    EXECUTE format('REVOKE SELECT ON public._yoyo_migration FROM %I, %I', app_role, analyst_role);
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA encounters FROM %I, %I', app_role, analyst_role);
    EXECUTE format('REVOKE ALL ON SCHEMA encounters, encounters_api FROM %I, %I', app_role, analyst_role);
END;
$$;

DROP FUNCTION encounters.grant_privileges();
DROP TABLE encounters.database_role;
