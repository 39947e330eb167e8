"""Database passwords with URL-special characters reach PostgreSQL intact, through DATABASE_* and
through DATABASE_URL, for `migrate` (yoyo and psycopg) as for the service; a wrong one is one
clear line, not a traceback. The session server asks one role of its own for a password
(scram-sha-256, a pg_hba.conf line for that role only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from encounters_service import cli
from tests.conftest import server_conninfo
from tests.helpers import forget_database_settings

ROLE = "password_tester"
PASSWORDS = ["pa/ss", "pa#ss", "pa?ss", "pa@ss", "pa%2Fss", "pa ss", "a/b#c?d@e%f g:h"]


@pytest.fixture(scope="module")
def password_role(pg_server) -> Iterator[None]:
    hba = Path(pg_server.datadir) / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"host all {ROLE} 127.0.0.1/32 scram-sha-256\n" + original)  # first match wins
    with psycopg.connect(server_conninfo(pg_server, "postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {ROLE} LOGIN SUPERUSER")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        hba.write_text(original)
        with psycopg.connect(server_conninfo(pg_server, "postgres"), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute(f"DROP ROLE {ROLE}")


def set_password(pg_server, password: str) -> None:
    with psycopg.connect(server_conninfo(pg_server, "postgres"), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(psycopg.sql.Identifier(ROLE), password))


def migrate_with(monkeypatch, capsys, env: dict[str, str]) -> str:
    forget_database_settings(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    cli.main(["migrate", "upgrade"])
    return capsys.readouterr().out


@pytest.mark.parametrize("password", PASSWORDS)
def test_migrate_connects_with_any_password(pg_server, password_role, fresh_database, monkeypatch, capsys, password):
    set_password(pg_server, password)
    parts = conninfo_to_dict(fresh_database)
    by_parts = {
        "DATABASE_HOST": parts["host"],
        "DATABASE_PORT": str(parts["port"]),
        "DATABASE_USER": ROLE,
        "DATABASE_PASSWORD": password,
        "DATABASE_NAME": parts["dbname"],
    }
    assert "nothing pending" in migrate_with(monkeypatch, capsys, by_parts)
    url = f"postgresql://{ROLE}:{quote(password, safe='')}@{parts['host']}:{parts['port']}/{parts['dbname']}"
    assert "nothing pending" in migrate_with(monkeypatch, capsys, {"DATABASE_URL": url})


def test_a_wrong_password_is_one_line(pg_server, password_role, fresh_database, monkeypatch, capsys):
    set_password(pg_server, "right/one")
    parts = conninfo_to_dict(fresh_database)
    url = f"postgresql://{ROLE}:wrong@{parts['host']}:{parts['port']}/{parts['dbname']}"
    with pytest.raises(SystemExit) as exit_info:
        migrate_with(monkeypatch, capsys, {"DATABASE_URL": url})
    message = str(exit_info.value.code)
    assert message.startswith("encounters-service: cannot connect to the database:"), message
    assert "password authentication failed" in message
    assert "\n" not in message.strip()
    assert "wrong" not in message
