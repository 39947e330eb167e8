"""Least privilege (migration 0009): what the app and analyst roles may and may not do, who owns
every object, and the grants a function added later gets."""

from __future__ import annotations

import json
import shutil
import uuid

import psycopg
import pytest

from encounters_service import migrate
from encounters_service.db import connect_sync, run_sync
from encounters_service.settings import DatabaseRoles
from encounters_service.sqlfiles import load_queries
from tests.conftest import create_database, drop_database, server_conninfo
from tests.helpers import ROLES, as_app, as_role

QUERIES = load_queries()


def body() -> str:
    return json.dumps(
        {
            "patient_uuid": str(uuid.uuid4()),
            "location_uuid": str(uuid.uuid4()),
            "patient_record_uuid": str(uuid.uuid4()),
            "dh_product_uuid": str(uuid.uuid4()),
            "admitted_at": "2018-01-01T08:00:00Z",
        }
    )


# What neither the app role nor the analyst role may do: change the schema, empty or write a table.
REFUSED = [
    "DROP TABLE encounters.encounter",
    "ALTER TABLE encounters.encounter ADD COLUMN x int",
    "TRUNCATE encounters.encounter",
    "UPDATE encounters.encounter SET modified_by = 'intruder'",
    "INSERT INTO encounters.outbox (routing_key, body) VALUES ('x', '{}')",
    "DELETE FROM encounters.outbox",
    "UPDATE encounters.outbox SET published_at = now()",
    "SELECT id FROM encounters.outbox FOR UPDATE",
    "CREATE TABLE encounters.intruder (x int)",
    "CREATE TABLE public.intruder (x int)",
    "CREATE FUNCTION encounters_api.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "DROP FUNCTION encounters_api.drop_data()",
    "SELECT encounters_api.emit('x', '{}', NULL)",
    "SELECT encounters.grant_privileges()",
    "DELETE FROM public._yoyo_migration",
]

# The functions that write: each runs as the owner (SECURITY DEFINER), for the app role only.
WRITE_FUNCTIONS = [
    "encounters_api.claim_outbox(integer)",
    "encounters_api.create_encounter(jsonb,text,boolean)",
    "encounters_api.create_encounters(jsonb,bigint,text,boolean)",
    "encounters_api.drop_data()",
    "encounters_api.mark_published(bigint[])",
    "encounters_api.merge_encounters(jsonb,text)",
    "encounters_api.prune_outbox(interval,integer)",
    "encounters_api.undo_merge(jsonb,text)",
    "encounters_api.unlink_encounter(uuid,jsonb,text)",
    "encounters_api.unlink_encounter_if_match(uuid,jsonb,text,bigint[])",
    "encounters_api.update_encounter(uuid,jsonb,text,boolean)",
    "encounters_api.update_encounter_if_match(uuid,jsonb,text,boolean,bigint[])",
    "encounters_api.update_score_system_history(uuid,jsonb,text)",
]


@pytest.mark.parametrize("statement", REFUSED)
def test_the_app_role_may_not_change_the_schema_nor_write_a_table_itself(fresh_database, statement):
    with psycopg.connect(as_app(fresh_database)) as app, pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute(statement)


def test_the_app_role_writes_and_relays_through_the_api_functions(fresh_database, db):
    with connect_sync(as_app(fresh_database), autocommit=True) as app:
        written = body()
        [(created, version)] = run_sync(
            app, QUERIES["writes.create_encounter"], body=written, caller="c", can_edit_ews=False
        )
        assert (json.loads(created)["patient_uuid"], version) == (json.loads(written)["patient_uuid"], 1)
        with app.transaction():  # the relay's batch
            ids = [row[0] for row in run_sync(app, QUERIES["relay.claim"], batch_size=10)]
            assert len(ids) == 1  # the event, written by the function, as the owner
            assert run_sync(app, QUERIES["relay.mark"], ids=ids) == [(1,)]
        db.execute("UPDATE encounters.outbox SET published_at = now() - interval '2 days'")
        assert run_sync(app, QUERIES["relay.prune"], retention="1 day", max_rows=10) == [(1,)]


def functions(db: psycopg.Connection, condition: str) -> list[str]:
    return [
        signature
        for (signature,) in db.execute(
            "SELECT replace(p.oid::regprocedure::text, ', ', ',') FROM pg_proc AS p"
            f" WHERE p.pronamespace = 'encounters_api'::regnamespace AND {condition} ORDER BY 1"
        )
    ]


def test_the_write_functions_run_as_the_owner_with_a_fixed_search_path(db):
    assert functions(db, "p.prosecdef") == WRITE_FUNCTIONS
    unsafe = "p.prosecdef AND NOT array_to_string(p.proconfig, ' ') ~ 'search_path=pg_catalog, .*pg_temp$'"
    assert functions(db, unsafe) == []


def call_with_nulls(signature: str) -> str:
    name, arguments = signature.rstrip(")").split("(", 1)
    return f"SELECT {name}({', '.join(f'NULL::{argument}' for argument in arguments.split(',') if argument)})"


def test_the_analyst_role_reads_and_every_write_is_refused_to_it(fresh_database, db):
    (encounter,) = db.execute(
        "SELECT encounters_api.create_encounter(%s::jsonb, 'c', false) ->> 'uuid'", [body()]
    ).fetchone()
    with psycopg.connect(as_role(fresh_database, ROLES.analyst), autocommit=True) as analyst:
        [(document,)] = analyst.execute("SELECT encounters_api.get_encounter(%s, false)", [encounter]).fetchall()
        assert document is not None
        for signature in WRITE_FUNCTIONS:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
                analyst.execute(call_with_nulls(signature))
        for statement in REFUSED:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                analyst.execute(statement)


def test_the_owner_owns_every_object_of_the_schemas_and_yoyos_tables(db):
    not_owned = db.execute(
        """
        SELECT c.oid::regclass::text FROM pg_class AS c
        WHERE (c.relnamespace IN ('encounters'::regnamespace, 'encounters_api'::regnamespace)
               OR c.relname IN ('_yoyo_migration', '_yoyo_log', '_yoyo_version', 'yoyo_lock'))
          AND c.relowner <> %(owner)s::regrole
        UNION ALL
        SELECT p.oid::regprocedure::text FROM pg_proc AS p
        WHERE p.pronamespace IN ('encounters'::regnamespace, 'encounters_api'::regnamespace)
          AND p.proowner <> %(owner)s::regrole
        UNION ALL
        SELECT nspname FROM pg_namespace
        WHERE nspname IN ('encounters', 'encounters_api') AND nspowner <> %(owner)s::regrole
        """,
        {"owner": ROLES.owner},
    ).fetchall()
    assert not_owned == []


def test_once_made_the_owner_runs_the_migrations_itself(fresh_database, db):
    """0009 is a superuser's job, once; afterwards the owner is enough, even to roll everything
    back (the schemas dropped) and build it all again."""
    # What 0009 granted on the template: a database's own privileges are not copied to its clones.
    db.execute(f"GRANT CREATE ON DATABASE {db.info.dbname} TO {ROLES.owner}")
    owner = as_role(fresh_database, ROLES.owner)
    applied = migrate.status(owner).applied
    assert migrate.rollback(owner, steps=None) == applied[::-1]
    assert migrate.upgrade(owner) == applied
    with psycopg.connect(as_app(fresh_database)) as app, pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("TRUNCATE encounters.encounter")  # the grants are back too


def test_a_function_added_later_gets_the_same_grants(fresh_database, db, tmp_path):
    """A new function file: owned by the owner, executable by the app; by the analyst only when
    it runs with the caller's privileges (a reader), not the owner's (a writer)."""
    directory = tmp_path / "functions"
    shutil.copytree(migrate.FUNCTIONS_DIR, directory)
    for name, security in (("later_reader", "INVOKER"), ("later_writer", "DEFINER")):
        (directory / f"encounters_api.{name}.sql").write_text(
            f"CREATE OR REPLACE FUNCTION encounters_api.{name}() RETURNS int LANGUAGE sql"
            f" SECURITY {security} SET search_path = pg_catalog, pg_temp RETURN 1;\n"
        )
    migrate.apply_functions(fresh_database, directory)
    with psycopg.connect(as_app(fresh_database)) as app:
        assert app.execute("SELECT encounters_api.later_reader() + encounters_api.later_writer()").fetchone() == (2,)
    with psycopg.connect(as_role(fresh_database, ROLES.analyst)) as analyst:
        assert analyst.execute("SELECT encounters_api.later_reader()").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for function"):
            analyst.execute("SELECT encounters_api.later_writer()")
    owners = db.execute("SELECT DISTINCT proowner::regrole::text FROM pg_proc WHERE proname LIKE 'later_%'")
    assert owners.fetchall() == [(ROLES.owner,)]


@pytest.fixture
def two_empty_databases(pg_server):
    names = [f"roles_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    yield [create_database(pg_server, name) for name in names]
    for name in names:
        drop_database(pg_server, name)


def test_roles_named_in_the_settings_are_made_once_per_server_and_granted_in_each_database(two_empty_databases):
    suffix = uuid.uuid4().hex[:8]
    roles = DatabaseRoles(owner=f"o_{suffix}", app=f"a_{suffix}", analyst=f"r_{suffix}")
    for database in two_empty_databases:  # the second one finds the roles made
        migrate.upgrade(database, roles)
        with psycopg.connect(database) as conn:
            recorded = dict(conn.execute("SELECT purpose, role_name FROM encounters.database_role").fetchall())
        assert recorded == {"owner": roles.owner, "app": roles.app, "analyst": roles.analyst}
        with psycopg.connect(as_role(database, roles.app)) as app:
            assert app.execute("SELECT count(*) FROM encounters.encounter").fetchone() == (0,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("TRUNCATE encounters.encounter")


def test_without_a_superuser_a_member_of_the_owner_role_runs_migration_0009(pg_server):
    """docs/dba.md, on a server where the service's role is not a superuser: the roles made by
    the DBA beforehand, the migrating role (which owns the database) made a member of the owner."""
    migrator, name = f"migrator_{uuid.uuid4().hex[:8]}", f"roles_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_conninfo(pg_server, "postgres"), autocommit=True) as superuser:
        superuser.execute(f"CREATE ROLE {migrator} LOGIN IN ROLE {ROLES.owner}")
        superuser.execute(f'CREATE DATABASE "{name}" OWNER {migrator} TEMPLATE template0')
    try:
        database = server_conninfo(pg_server, name)
        migrate.upgrade(as_role(database, migrator))
        with psycopg.connect(database) as conn:
            owners = conn.execute(
                "SELECT DISTINCT relowner::regrole::text FROM pg_class"
                " WHERE relnamespace = 'encounters'::regnamespace OR relname = '_yoyo_migration'"
            ).fetchall()
        assert owners == [(ROLES.owner,)]
        with psycopg.connect(as_app(database)) as app, pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute("TRUNCATE encounters.encounter")
    finally:
        drop_database(pg_server, name)
        with psycopg.connect(server_conninfo(pg_server, "postgres"), autocommit=True) as superuser:
            superuser.execute(f"DROP ROLE {migrator}")
