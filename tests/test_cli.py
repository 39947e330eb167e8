"""The command line: token minting and the migrate subcommands against a real database."""

from __future__ import annotations

import port_for
import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from encounters_service import cli
from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, Authenticator
from encounters_service.settings import load_settings
from tests.helpers import as_app, forget_database_settings
from tests.migrations.test_migrations import MIGRATION_IDS


def run_cli(capsys, monkeypatch, env: dict[str, str], *argv: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cli.main(list(argv))
    return capsys.readouterr().out


def test_token_carries_scopes_and_typed_claims(capsys, monkeypatch):
    env = {"HS_KEY": "k" * 64, "HS_ISSUER": "http://iss/"}
    output = run_cli(
        capsys,
        monkeypatch,
        env,
        "token",
        "--scope",
        READ_SCOPE,
        "--claim",
        "system_id=dhos-robot",
        "--claim",
        "can_edit_ews=true",
    )
    caller = Authenticator(load_settings(env)).authenticate(f"Bearer {output.strip()}")
    assert caller.id == "dhos-robot"
    assert caller.scopes == frozenset({READ_SCOPE})
    assert caller.can_edit_ews is True


def test_token_defaults_to_read_and_write_for_a_local_clinician(capsys, monkeypatch):
    env = {"HS_KEY": "k" * 64}
    caller = Authenticator(load_settings(env)).authenticate(
        f"Bearer {run_cli(capsys, monkeypatch, env, 'token').strip()}"
    )
    assert caller.scopes == frozenset({READ_SCOPE, WRITE_SCOPE})
    assert caller.id == "local-user"


def test_token_refuses_a_claim_without_a_value(capsys):
    with pytest.raises(SystemExit):
        cli.main(["token", "--claim", "no-equals-sign"])
    assert "key=value" in capsys.readouterr().err


def test_migrate_upgrade_status_rollback(capsys, monkeypatch, fresh_database):
    env = {
        "DATABASE_URL": as_app(fresh_database),
        "MIGRATION_DATABASE_URL": fresh_database,
    }  # the service's, the owner's
    assert "nothing pending" in run_cli(capsys, monkeypatch, env, "migrate", "upgrade")
    status = run_cli(capsys, monkeypatch, env, "migrate", "status")
    assert "applied  0001.initial-schema" in status
    assert "function encounters_api.encounter_json.sql sha256=" in status
    last, *_ = reversed(MIGRATION_IDS)
    assert f"rolled back: {last}" in run_cli(capsys, monkeypatch, env, "migrate", "rollback")
    assert f"pending  {last}" in run_cli(capsys, monkeypatch, env, "migrate", "status")
    rest = ", ".join(reversed(MIGRATION_IDS[:-1]))
    assert f"rolled back: {rest}\n" == run_cli(capsys, monkeypatch, env, "migrate", "rollback", "--all")
    assert "pending  0001.initial-schema" in run_cli(capsys, monkeypatch, env, "migrate", "status")
    assert f"applied: {', '.join(MIGRATION_IDS)}" in run_cli(capsys, monkeypatch, env, "migrate", "upgrade")


@pytest.mark.parametrize("form", ["url", "key=value"])
def test_a_database_url_may_name_several_hosts(capsys, monkeypatch, fresh_database, form):
    """As for failover (tests/relay/test_failover.py): libpq tries the hosts in turn. The first one
    here is down; migrate (yoyo's connection and psycopg's) finds the second, dburl prints it all."""
    parts = conninfo_to_dict(fresh_database)
    down = port_for.select_random()
    hosts = f"{parts['host']}:{down},{parts['host']}:{parts['port']}"
    ports = f"{down},{parts['port']}"
    url = {
        "url": f"postgresql://{parts['user']}@{hosts}/{parts['dbname']}?target_session_attrs=read-write",
        "key=value": f"host={parts['host']},{parts['host']} port={ports} user={parts['user']} dbname={parts['dbname']}",
    }[form]
    env = {"DATABASE_URL": url}
    assert "nothing pending" in run_cli(capsys, monkeypatch, env, "migrate", "upgrade")
    assert "applied  0001.initial-schema" in run_cli(capsys, monkeypatch, env, "migrate", "status")
    assert run_cli(capsys, monkeypatch, env, "dburl") == f"{url}\n"


def test_bad_configuration_exits_with_a_message(capsys, monkeypatch):
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["token"])
    assert "LOG_LEVEL" in str(exit_info.value.code)


@pytest.fixture
def empty_database(pg_server):
    from tests.conftest import create_database, drop_database

    conninfo = create_database(pg_server, "cli_empty")
    yield conninfo
    drop_database(pg_server, "cli_empty")


@pytest.mark.parametrize("command", ["serve", "relay"])
def test_serve_and_relay_refuse_an_unmigrated_database_in_one_line(capsys, monkeypatch, empty_database, command):
    monkeypatch.setenv("DATABASE_URL", empty_database)
    monkeypatch.setenv("MIGRATE_ON_START", "false")
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command])
    message = str(exit_info.value.code)
    assert message.startswith(
        "encounters-service: the database is not at this version's schema (pending migration 0001"
    )
    assert message.endswith("run `encounters-service migrate upgrade` first")
    with psycopg.connect(empty_database) as conn:  # the check wrote nothing, not even yoyo's tables
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)


def test_serve_refuses_function_files_that_are_not_deployed(capsys, monkeypatch, fresh_database):
    with psycopg.connect(fresh_database, autocommit=True) as conn:
        conn.execute(
            "UPDATE encounters.deployed_function SET sha256 = 'old' WHERE file_name = 'encounters_api.emit.sql'"
        )
    monkeypatch.setenv("DATABASE_URL", fresh_database)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serve"])
    assert "(function file encounters_api.emit.sql)" in str(exit_info.value.code)


@pytest.mark.parametrize("command", [["serve"], ["migrate", "upgrade"]])
def test_without_a_local_database_a_missing_database_setting_says_to_set_one(monkeypatch, command):
    """As in the container image (LOCAL_DATABASE=false), which has no PostgreSQL to start."""
    monkeypatch.setenv("LOCAL_DATABASE", "false")
    forget_database_settings(monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(command)
    assert str(exit_info.value.code).startswith("encounters-service: no database is configured: set DATABASE_URL")


def test_the_http_server_speaks_http1_with_the_idle_timeout_and_shares_the_connection_limit():
    from granian.constants import HTTPModes

    settings = load_settings({"HTTP_IDLE_TIMEOUT_SECONDS": "2.5", "HTTP_MAX_CONNECTIONS": "1001"})
    server = cli.http_server("encounters_service.app:app_from_env", settings, workers=2)
    assert server.http == HTTPModes.http1  # no HTTP/2 detection: it read first bytes with no timeout
    assert server.http1_settings.header_read_timeout == 2500
    assert server.backpressure == 501  # connections per worker


def test_the_connection_limit_raises_the_open_file_limit_or_shrinks_to_fit(monkeypatch):
    limits = {"soft": 1024, "hard": 4096}
    monkeypatch.setattr(cli.resource, "getrlimit", lambda _: (limits["soft"], limits["hard"]))
    monkeypatch.setattr(cli.resource, "setrlimit", lambda _, values: limits.update(soft=values[0]))
    assert cli.connections_per_worker(2000, workers=2) == 1000
    assert limits["soft"] == 1000 + cli.FILES_RESERVED
    assert cli.connections_per_worker(20_000, workers=2) == 4096 - cli.FILES_RESERVED
    assert limits["soft"] == 4096
