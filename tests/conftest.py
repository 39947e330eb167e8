"""Test PostgreSQL: one server per session (pytest-postgresql), migrations applied once into a
template database, and a fresh clone of it for each test that needs one.

pg_ctl refuses to run as root (CI runs as root), so the server is driven through a small wrapper
that switches to the `postgres` user, with its data on tmpfs in a directory that user owns.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import port_for
import psycopg
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from pytest_postgresql.executors import PostgreSQLExecutor

from encounters_service import migrate
from encounters_service.app import create_app
from encounters_service.db import connect_sync
from encounters_service.embedded import find_bindir
from tests.helpers import TEST_SETTINGS, as_app

TEMPLATE = "encounters_template"
_clone_numbers = itertools.count()


def _scratch_dir() -> Path:
    """A directory on tmpfs (fast clones) that the server's user can own."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    directory = Path(tempfile.mkdtemp(prefix="encounters-tests-", dir=base))
    directory.chmod(0o755)
    if os.geteuid() == 0:
        postgres = pwd.getpwnam("postgres")
        os.chown(directory, postgres.pw_uid, postgres.pw_gid)
    return directory


def _pg_ctl_wrapper(directory: Path) -> Path:
    pg_ctl = find_bindir() / "pg_ctl"
    as_postgres = "runuser -u postgres -- " if os.geteuid() == 0 else ""
    wrapper = directory / "pg_ctl"
    wrapper.write_text(f'#!/bin/sh\nexec {as_postgres}"{pg_ctl}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return wrapper


# The session server trades durability for speed; the outage test runs its own with the defaults.
FAST_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"


@contextmanager
def running_postgres(options: str = "") -> Iterator[PostgreSQLExecutor]:
    """A PostgreSQL server of its own (data on tmpfs), accepting logins until exit."""
    directory = _scratch_dir()
    executor = PostgreSQLExecutor(
        executable=str(_pg_ctl_wrapper(directory)),
        host="127.0.0.1",
        port=port_for.select_random(),
        datadir=str(directory / "data"),
        unixsocketdir=str(directory),
        logfile=str(directory / "postgresql.log"),
        startparams="-w",
        dbname=TEMPLATE,
        postgres_options=options,
    )
    executor.start()
    _wait_until_accepting_connections(executor)
    try:
        yield executor
    finally:
        if executor.running():
            executor.stop()
        else:  # crashed (crash_postgres) and left down, as after a failover: pg_ctl stop would fail
            executor.kill()
        shutil.rmtree(directory, ignore_errors=True)


def crash_postgres(server: PostgreSQLExecutor) -> None:
    """Stop the server at once, as a crash would: no checkpoint, clients cut off."""
    command = [server.executable, "stop", "-D", server.datadir, "-m", "immediate"]
    subprocess.run(command, check=True, capture_output=True)


def restart_postgres(server: PostgreSQLExecutor) -> None:
    """Start a stopped server again on its data directory (crash recovery first, if it crashed)."""
    subprocess.run(shlex.split(server.command), env={**os.environ, **server.envvars}, check=True, capture_output=True)
    _wait_until_accepting_connections(server)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgreSQLExecutor]:
    with running_postgres(FAST_OPTIONS) as executor:
        yield executor


def _wait_until_accepting_connections(server: PostgreSQLExecutor, seconds: float = 30) -> None:
    """The TCP port opens before PostgreSQL accepts logins ("the database system is starting up")."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            psycopg.connect(server_conninfo(server, "postgres")).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def server_conninfo(server: PostgreSQLExecutor, dbname: str) -> str:
    return f"postgresql://postgres@{server.host}:{server.port}/{dbname}"


def create_database(server: PostgreSQLExecutor, name: str, template: str = "template0") -> str:
    with psycopg.connect(server_conninfo(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{name}" template "{template}"')
    return server_conninfo(server, name)


def drop_database(server: PostgreSQLExecutor, name: str) -> None:
    with psycopg.connect(server_conninfo(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def template_conninfo(pg_server: PostgreSQLExecutor) -> str:
    """A database with every migration and function applied; tests clone it, never write to it."""
    conninfo = create_database(pg_server, TEMPLATE)
    migrate.upgrade(conninfo)
    return conninfo


def stale_documents(conninfo: str) -> list[tuple]:
    """Encounters whose stored document (encounter.document) is not what encounters_api.encounter_json
    renders from the tables now; none, whatever was written, if the triggers keep them current."""
    try:
        conn = psycopg.connect(conninfo)
    except psycopg.OperationalError:  # the test dropped its database
        return []
    with conn:
        return conn.execute(
            "SELECT e.uuid, e.document FROM encounters.encounter AS e"
            " WHERE e.document::jsonb IS DISTINCT FROM encounters_api.encounter_json(e)"
        ).fetchall()


@contextmanager
def template_clone(server: PostgreSQLExecutor) -> Iterator[str]:
    """Conninfo of a fresh clone of the migrated template, dropped on exit. After a test that
    passed, every stored encounter document must still be current."""
    name = f"test_{os.getpid()}_{next(_clone_numbers)}"
    conninfo = create_database(server, name, template=TEMPLATE)
    try:
        yield conninfo
        stale = stale_documents(conninfo)
    finally:
        drop_database(server, name)
    assert not stale, f"stored documents out of date after the test: {stale[:3]}"


@pytest.fixture
def fresh_database(pg_server: PostgreSQLExecutor, template_conninfo: str) -> Iterator[str]:
    """Conninfo of a fresh clone of the template, dropped after the test; as the superuser, for
    arranging and checking (the service under test connects as tests.helpers.as_app of it)."""
    with template_clone(pg_server) as conninfo:
        yield conninfo


@pytest.fixture
def db(fresh_database: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the test's own database, for arranging and checking rows."""
    with connect_sync(fresh_database, autocommit=True) as conn:
        yield conn


@pytest.fixture
def client(fresh_database: str) -> Iterator[TestClient]:
    """The real app (its own pool, its own commits) on the test's own database, as the app role."""
    with TestClient(create_app(TEST_SETTINGS, as_app(fresh_database))) as test_client:
        yield test_client


@contextmanager
def served_in_thread(app: Litestar) -> Iterator[str]:
    """Base URL of `app` served by uvicorn on a free loopback port, in a thread, until exit."""
    import threading

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port_for.select_random(), log_config=None, access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the test server did not start")
        threading.Event().wait(0.02)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def live_server(fresh_database: str) -> Iterator[str]:
    """The real app served by uvicorn on a free loopback port, for truly parallel HTTP clients, as the app role."""
    with served_in_thread(create_app(TEST_SETTINGS, as_app(fresh_database))) as base_url:
        yield base_url
