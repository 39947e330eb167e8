"""The commands and the roles of least privilege: `migrate` as the owner (MIGRATION_DATABASE_URL),
and `serve` and `relay` warning, once, when they are connected as more than the app role."""

from __future__ import annotations

import re
import time

import pytest

from encounters_service import cli, migrate
from tests.helpers import ROLES, SERVICE_ENV, Command, Service, as_app, as_role


def test_a_superuser_or_the_owner_is_warned_about_and_told_the_app_role(fresh_database, db):
    assert migrate.role_warning(as_app(fresh_database)) is None
    assert migrate.role_warning(as_role(fresh_database, ROLES.analyst)) is None
    superuser = migrate.role_warning(fresh_database)
    assert superuser and superuser.startswith(
        f"connected to the database as postgres, a superuser: connect as {ROLES.app}"
    )
    owner = migrate.role_warning(as_role(fresh_database, ROLES.owner))
    assert owner and f"with the privileges of {ROLES.owner}, which owns the schema: connect as {ROLES.app}" in owner
    member = f"member_{db.info.dbname}"
    db.execute(f"CREATE ROLE {member} LOGIN IN ROLE {ROLES.owner}")
    try:
        assert f"as {member}, with the privileges of {ROLES.owner}" in (
            migrate.role_warning(as_role(fresh_database, member)) or ""
        )
    finally:
        db.execute(f"DROP ROLE {member}")


def test_serve_warns_once_when_connected_as_a_superuser(fresh_database):
    with Service.start({**SERVICE_ENV, "DATABASE_URL": fresh_database, "WEB_CONCURRENCY": "2"}) as service:
        service.wait_until_running()
        output = service.stop()
    assert output.count(f"a superuser: connect as {ROLES.app} instead") == 1, output


def test_the_relay_warns_once_when_connected_as_the_owner(fresh_database):
    env = {"DATABASE_URL": as_role(fresh_database, ROLES.owner), "RABBITMQ_DISABLED": "true"}
    with Command.launch(env, "relay") as relay:
        deadline = time.monotonic() + 30
        while "RABBITMQ_DISABLED=true" not in relay.output():
            assert relay.process.poll() is None and time.monotonic() < deadline, relay.output()
            time.sleep(0.1)
        output = relay.stop()
    assert output.count(f"with the privileges of {ROLES.owner}, which owns the schema: connect as {ROLES.app}") == 1


def test_migrate_connects_with_the_migration_url_and_the_app_role_may_not_migrate(capsys, monkeypatch, fresh_database):
    monkeypatch.setenv("DATABASE_URL", as_app(fresh_database))
    with pytest.raises(SystemExit) as refused:
        cli.main(["migrate", "rollback"])  # the app role may not change the schema
    assert str(refused.value.code).startswith("encounters-service: the database refused: permission denied")
    assert str(refused.value.code).endswith(
        "the migrations run as the owner role (MIGRATION_DATABASE_URL, see docs/dba.md)"
    )
    monkeypatch.setenv("MIGRATION_DATABASE_URL", as_role(fresh_database, ROLES.owner))
    cli.main(["migrate", "rollback"])
    cli.main(["migrate", "upgrade"])
    out = capsys.readouterr().out
    [rolled_back] = re.findall(r"^rolled back: (\S+)$", out, re.MULTILINE)  # the newest migration
    assert f"applied: {rolled_back}; function files re-applied" in out


def test_migrate_status_says_who_may_do_what(capsys, monkeypatch, fresh_database):
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    cli.main(["migrate", "status"])
    grants = [
        line.removeprefix("grant    ") for line in capsys.readouterr().out.splitlines() if line.startswith("grant ")
    ]
    for line in (
        f"{ROLES.owner} schema encounters: OWNER",
        f"{ROLES.owner} table encounters.encounter: OWNER",
        f"{ROLES.owner} table public._yoyo_migration: OWNER",
        f"{ROLES.app} schema encounters: USAGE",
        f"{ROLES.app} table encounters.encounter: SELECT",
        f"{ROLES.app} function encounters_api.create_encounter(jsonb,text,boolean): EXECUTE (runs as its owner)",
        f"{ROLES.app} function encounters_api.get_encounter(uuid,boolean): EXECUTE",
        f"{ROLES.analyst} table encounters.encounter: SELECT",
        f"{ROLES.analyst} function encounters_api.get_encounter(uuid,boolean): EXECUTE",
    ):
        assert line in grants
    assert not [line for line in grants if line.startswith(f"{ROLES.analyst} ") and "runs as its owner" in line]
    assert not [line for line in grants if line.startswith("PUBLIC ") and "encounters" in line]
